from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


def _big(name: str) -> ops.AddField:
    return ops.AddField(model_name='Bill', name=name, field=fields.BigIntField(default=0))


class Migration(migrations.Migration):
    dependencies = [('payments', '0002_collection_lease')]

    initial = False

    operations = [
        ops.AddField(model_name='Hospital', name='tier', field=fields.IntField(default=3)),
        ops.AddField(
            model_name='Hospital',
            name='settlement_mode',
            field=fields.CharField(default='encounter', max_length=16),
        ),
        ops.AddField(model_name='Hospital', name='batch_hour', field=fields.IntField(default=23)),
        ops.AddField(
            model_name='Encounter',
            name='ec_token',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Encounter',
            name='ec_token_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        _big('current_account_fen'),
        _big('self_segment_accumulated_fen'),
        _big('self_segment_cash_fen'),
        _big('fund_fen'),
        _big('copay_accumulated_fen'),
        _big('copay_cash_fen'),
        _big('self_paid_items_fen'),
        ops.AddField(
            model_name='Bill', name='rule_version', field=fields.CharField(default='', max_length=40)
        ),
        ops.AddField(
            model_name='Bill',
            name='bureau_settlement_id',
            field=fields.CharField(null=True, max_length=60),
        ),
        ops.AddField(
            model_name='Bill',
            name='batch_id',
            field=fields.CharField(null=True, max_length=60),
        ),
        ops.CreateModel(
            name='BureauSettlement',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=60)),
                ('encounter_id', fields.CharField(unique=True, max_length=40)),
                ('hospital_id', fields.CharField(db_index=True, max_length=40)),
                ('subject_id', fields.CharField(max_length=64)),
                ('status', fields.CharField(db_index=True, max_length=16)),
                ('closed_by', fields.CharField(max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('reason', fields.CharField(null=True, max_length=64)),
                ('result', fields.JSONField(null=True)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_bureau_settlements', 'app': 'payments', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementBatch',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=60)),
                ('hospital_id', fields.CharField(db_index=True, max_length=40)),
                ('day', fields.DateField()),
                ('status', fields.CharField(max_length=16)),
                ('encounters', fields.IntField(default=0)),
                ('charges', fields.IntField(default=0)),
                ('amount_fen', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_settlement_batches', 'app': 'payments', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SandboxInsured',
            fields=[
                ('subject_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('category', fields.CharField(max_length=32)),
                ('behaviour', fields.CharField(default='', max_length=16)),
                ('medical_year', fields.IntField()),
                ('current_account_fen', fields.BigIntField(default=0)),
                ('accumulated_account_fen', fields.BigIntField(default=0)),
                ('deductible_used_fen', fields.BigIntField(default=0)),
                ('fund_used_fen', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_bureau_sandbox_insured', 'app': 'payments', 'pk_attr': 'subject_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SandboxBureauOperation',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=60)),
                ('kind', fields.CharField(max_length=16)),
                ('subject_id', fields.CharField(max_length=64)),
                ('result', fields.JSONField()),
                ('attempts', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments_bureau_sandbox_operations', 'app': 'payments', 'pk_attr': 'key'},
            bases=['Model'],
        ),
    ]
