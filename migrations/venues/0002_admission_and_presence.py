from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('venues', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Admission',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ('venue_id', fields.CharField(max_length=40)),
                ('gate_id', fields.CharField(max_length=40)),
                ('scan_id', fields.CharField(max_length=80)),
                ('admitted_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_admission', 'app': 'venues', 'pk_attr': 'key', 'table_description': 'The one admission a code made at a venue (online or synced): the entry that admitted'},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='Presence',
            options={'table': 'venues_presence', 'app': 'venues', 'unique_together': (('venue_id', 'subject_id'),), 'pk_attr': 'id', 'table_description': 'Whether a person is inside a venue now (anti-passback, occupancy) and when they last'},
        ),
    ]
