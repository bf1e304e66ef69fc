from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='DailyCount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('venue_id', fields.CharField(max_length=40)),
                ('day', fields.DateField()),
                ('admits', fields.IntField(default=0)),
                ('denies', fields.IntField(default=0)),
                ('exits', fields.IntField(default=0)),
                ('checkins', fields.IntField(default=0)),
            ],
            options={'table': 'venues_daily_count', 'app': 'venues', 'unique_together': (('venue_id', 'day'),), 'pk_attr': 'id', 'table_description': 'Per venue and local day, what remains of purged entries and visits.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Entry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('venue_id', fields.CharField(max_length=40)),
                ('gate_id', fields.CharField(max_length=40)),
                ('scan_id', fields.CharField(max_length=80)),
                ('body_hash', fields.CharField(max_length=64)),
                ('direction', fields.CharField(max_length=4)),
                ('decision', fields.CharField(max_length=8)),
                ('reason', fields.CharField(max_length=40)),
                ('subject_id', fields.CharField(null=True, db_index=True, max_length=80)),
                ('code_id', fields.CharField(null=True, db_index=True, max_length=80)),
                ('reservation_id', fields.CharField(null=True, max_length=40)),
                ('counted', fields.BooleanField(default=False)),
                ('response', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('offline', fields.BooleanField(default=False)),
                ('scanned_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('annulled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_entry', 'app': 'venues', 'unique_together': (('gate_id', 'scan_id'),), 'indexes': [Index(fields=['venue_id', 'scanned_at'])], 'pk_attr': 'id', 'table_description': 'One gate scan (entry or exit, admitted or denied), online or synced from offline.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NoShow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject_id', fields.CharField(db_index=True, max_length=80)),
                ('venue_id', fields.CharField(max_length=40)),
                ('reservation_id', fields.CharField(unique=True, max_length=40)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_no_show', 'app': 'venues', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Presence',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('venue_id', fields.CharField(max_length=40)),
                ('subject_id', fields.CharField(max_length=80)),
                ('inside', fields.BooleanField(default=False)),
                ('entered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('exited_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_presence', 'app': 'venues', 'unique_together': (('venue_id', 'subject_id'),), 'pk_attr': 'id', 'table_description': 'Whether a subject is inside a venue now (anti-passback) and when they last left.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Suspension',
            fields=[
                ('subject_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=80)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_suspension', 'app': 'venues', 'pk_attr': 'subject_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Venue',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('name', fields.CharField(max_length=200)),
                ('kind', fields.CharField(max_length=40)),
                ('district', fields.CharField(default='', max_length=100)),
                ('address', fields.CharField(default='', max_length=300)),
                ('opening_hours', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('capacity', fields.IntField()),
                ('policy', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('occupancy', fields.IntField(default=0)),
                ('place_code', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_venue', 'app': 'venues', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Gate',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('venue', fields.ForeignKeyField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='gates', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('direction', fields.CharField(max_length=4)),
                ('client_id', fields.CharField(unique=True, max_length=80)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_gate', 'app': 'venues', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Slot',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('venue', fields.ForeignKeyField('venues.Venue', source_field='venue_id', db_constraint=True, to_field='id', related_name='slots', on_delete=OnDelete.CASCADE)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('capacity', fields.IntField()),
                ('walk_in', fields.IntField(default=0)),
                ('booked', fields.IntField(default=0)),
                ('no_shows_counted', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_slot', 'app': 'venues', 'indexes': [Index(fields=['venue_id', 'starts_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Reservation',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('slot', fields.ForeignKeyField('venues.Slot', source_field='slot_id', db_constraint=True, to_field='id', related_name='reservations', on_delete=OnDelete.CASCADE)),
                ('venue_id', fields.CharField(db_index=True, max_length=40)),
                ('day', fields.DateField()),
                ('account_id', fields.CharField(db_index=True, max_length=80)),
                ('booker_subject_id', fields.CharField(db_index=True, max_length=80)),
                ('party_size', fields.IntField()),
                ('status', fields.CharField(default='booked', max_length=16)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_reservation', 'app': 'venues', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Seat',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reservation', fields.ForeignKeyField('venues.Reservation', source_field='reservation_id', db_constraint=True, to_field='id', related_name='seats', on_delete=OnDelete.CASCADE)),
                ('venue_id', fields.CharField(max_length=40)),
                ('day', fields.DateField()),
                ('subject_id', fields.CharField(db_index=True, max_length=80)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_seat', 'app': 'venues', 'unique_together': (('venue_id', 'day', 'subject_id'),), 'pk_attr': 'id', 'table_description': 'One person of a booked party. The unique key allows one booking per person per'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Visit',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('venue_id', fields.CharField(db_index=True, max_length=40)),
                ('subject_id', fields.CharField(db_index=True, max_length=80)),
                ('status', fields.CharField(max_length=8)),
                ('checked_in_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'venues_visit', 'app': 'venues', 'pk_attr': 'id', 'table_description': "A check-in by scanning the venue's place code."},
            bases=['Model'],
        ),
    ]
