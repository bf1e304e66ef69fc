from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('codes', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PrintedCode',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('subject_id', fields.CharField(db_index=True, max_length=64)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('issuing_point', fields.CharField(max_length=100)),
                ('issued_by', fields.CharField(max_length=64)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_by', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'codes_printed_code', 'app': 'codes', 'pk_attr': 'id', 'table_description': 'A printed long-lived code (离线码, code type 3): its random id (the code id), whose'},
            bases=['Model'],
        ),
    ]
