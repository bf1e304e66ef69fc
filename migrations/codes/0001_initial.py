from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='CodeRevocation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject_id', fields.CharField(db_index=True, max_length=64)),
                ('code_id', fields.CharField(null=True, max_length=32)),
                ('revoked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('not_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=64)),
            ],
            options={'table': 'codes_revocation', 'app': 'codes', 'pk_attr': 'id', 'table_description': 'A revocation: one row for the subject (`code_id` null) and one per code that was'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CodeSubject',
            fields=[
                ('handle', fields.BigIntField(primary_key=True, unique=True, db_index=True, generated=False)),
                ('subject_id', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'codes_subject', 'app': 'codes', 'pk_attr': 'handle', 'table_description': 'The random 64-bit handle that stands for a subject inside codes (sealed, never in'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthStatus',
            fields=[
                ('subject_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('status', fields.CharField(max_length=8)),
                ('reason', fields.CharField(max_length=500)),
                ('valid_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.BigIntField()),
                ('set_by', fields.CharField(max_length=64)),
                ('set_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'codes_health_status', 'app': 'codes', 'pk_attr': 'subject_id', 'table_description': "A subject's current status as the authority last set it. `version` orders writes"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthStatusChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject_id', fields.CharField(db_index=True, max_length=64)),
                ('status', fields.CharField(max_length=8)),
                ('reason', fields.CharField(max_length=500)),
                ('valid_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.BigIntField()),
                ('set_by', fields.CharField(max_length=64)),
                ('set_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'codes_health_status_change', 'app': 'codes', 'pk_attr': 'id', 'table_description': 'Every status change ever made (append-only history).'},
            bases=['Model'],
        ),
    ]
