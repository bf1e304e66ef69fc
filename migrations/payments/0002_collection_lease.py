from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('payments', '0001_initial')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Bill',
            options={'table': 'payments_bills', 'app': 'payments', 'pk_attr': 'id', 'table_description': 'What a settlement produced; `status` is a `BillStatus` (machine in payments/states.py).'},
        ),
        ops.AddField(
            model_name='Collection',
            name='leased_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
