from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('venues', '0002_admission_and_presence')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Gate',
            name='bundle_fetched_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Gate',
            name='last_contact_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
