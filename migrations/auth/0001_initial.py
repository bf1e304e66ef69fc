from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=80)),
                ('action', fields.CharField(db_index=True, max_length=40)),
                ('target', fields.CharField(null=True, max_length=80)),
                ('request_id', fields.CharField(null=True, max_length=128)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'auth_audit_event', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'A security event. Never holds a secret, token, OTP, name or ID number.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Client',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('kind', fields.CharField(max_length=16)),
                ('tenant_id', fields.CharField(null=True, db_index=True, max_length=64)),
                ('scope', fields.CharField(max_length=255)),
                ('secret_hash', fields.CharField(max_length=64)),
                ('generation', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(max_length=64)),
                ('rotated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('disabled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_client', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'A machine client (gate, hospital, authority, operator, admin).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Consent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('subject_id', fields.CharField(db_index=True, max_length=32)),
                ('code_hash', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('used_by_account_id', fields.CharField(null=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_consent', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'A one-time code an account holder gives a relative so they may add them as a'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('family_id', fields.CharField(db_index=True, max_length=32)),
                ('account_id', fields.CharField(db_index=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_refresh_token', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'One refresh token of a login family, stored only as its SHA-256.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Subject',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('id_number_index', fields.CharField(unique=True, max_length=64)),
                ('id_number_enc', fields.TextField(unique=False)),
                ('name_enc', fields.TextField(unique=False)),
                ('name_index', fields.CharField(max_length=64)),
                ('masked_name', fields.CharField(max_length=40)),
                ('masked_id_number', fields.CharField(max_length=18)),
                ('birth_date', fields.DateField()),
                ('owner_account_id', fields.CharField(null=True, unique=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_subject', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'A real-name person: an account holder, a dependent, or both over time. `id` is the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('phone_index', fields.CharField(unique=True, max_length=64)),
                ('phone_enc', fields.TextField(unique=False)),
                ('subject', fields.OneToOneField('auth.Subject', source_field='subject_id', null=True, db_constraint=True, to_field='id', related_name='account', on_delete=OnDelete.RESTRICT)),
                ('dependents', fields.SmallIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_account', 'app': 'auth', 'pk_attr': 'id', 'table_description': "A resident's login, keyed by mobile number."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Guardianship',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('guardian_account_id', fields.CharField(db_index=True, max_length=32)),
                ('subject', fields.ForeignKeyField('auth.Subject', source_field='subject_id', db_constraint=True, to_field='id', related_name='guardianships', on_delete=OnDelete.RESTRICT)),
                ('relation', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_guardianship', 'app': 'auth', 'unique_together': (('guardian_account_id', 'subject'),), 'pk_attr': 'id', 'table_description': 'A resident (guardian account) may act for a dependent subject.'},
            bases=['Model'],
        ),
    ]
