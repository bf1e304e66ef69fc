from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('payments', '0003_bureau_and_segments')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CreditScore',
            fields=[
                ('account_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tier', fields.CharField(max_length=16)),
                ('score', fields.IntField(null=True)),
                ('reasons', fields.JSONField()),
                ('pending', fields.BooleanField(default=False)),
                ('checked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('next_check_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_credit_scores', 'app': 'payments', 'pk_attr': 'account_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Invoice',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('issue_key', fields.CharField(unique=True, max_length=80)),
                ('kind', fields.CharField(max_length=8)),
                ('code', fields.CharField(max_length=8)),
                ('check_code', fields.CharField(max_length=8)),
                ('bill_id', fields.CharField(db_index=True, max_length=40)),
                ('hospital_id', fields.CharField(db_index=True, max_length=40)),
                ('subject_id', fields.CharField(db_index=True, max_length=64)),
                ('payer_subject_id', fields.CharField(db_index=True, max_length=64)),
                ('original_id', fields.BigIntField(null=True)),
                ('total_fen', fields.BigIntField()),
                ('content', fields.JSONField()),
                ('kid', fields.CharField(max_length=80)),
                ('signature', fields.CharField(max_length=120)),
                ('issued_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_invoices', 'app': 'payments', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
