from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('venues', '0003_gate_last_contact')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Entry',
            name='credential',
            field=fields.CharField(default='code', max_length=8),
        ),
    ]
