from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Client',
            name='location',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.CreateModel(
            name='KioskSession',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('kiosk_id', fields.CharField(db_index=True, max_length=40)),
                ('account_id', fields.CharField(db_index=True, max_length=32)),
                ('subject_id', fields.CharField(max_length=32)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_kiosk_session', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'A resident identified at a kiosk: pending until the OTP is confirmed, then its'},
            bases=['Model'],
        ),
    ]
