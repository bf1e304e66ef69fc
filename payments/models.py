"""Tortoise models of the payments domain: hospitals, credit, encounters, bills, the ledger,
webhooks and the sandbox processor's own books.

Other domains' objects (subjects, clients) are referred to by id strings, never by foreign key.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from payments.states import AccountStatus, EncounterStatus, OutboxStatus


class Hospital(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    # 1/2/3 = 一级/二级/三级: the fund's co-pay ratio depends on it.
    tier = fields.IntField(default=3)
    # SettlementMode: settle each encounter at close, or each patient's day in a batch.
    settlement_mode = fields.CharField(max_length=16, default="encounter")
    batch_hour = fields.IntField(default=23)  # local hour the daily batch runs

    class Meta:
        table = "payments_hospitals"


class WebhookEndpoint(Model):
    """Where a hospital wants its events. The signing secret is derived from the platform
    webhook key and `secret_version` (never stored), so rotating it bumps the version."""

    id = fields.IntField(primary_key=True)
    hospital_id = fields.CharField(max_length=40, unique=True)
    url = fields.CharField(max_length=500)
    secret_version = fields.IntField(default=1)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "payments_webhook_endpoints"


class CreditAccount(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    subject_id = fields.CharField(max_length=64, unique=True)
    limit_fen = fields.BigIntField()
    # The provider's reference to the bound method (a token, never card data).
    payment_method = fields.CharField(max_length=64)
    # Defaults are the plain stored strings (`.value`), as the migrations recorded them.
    status = fields.CharField(max_length=16, default=AccountStatus.ACTIVE.value)
    insured = fields.BooleanField(default=True)
    scheme = fields.CharField(max_length=32, default="outpatient")
    insurance_year = fields.IntField()
    deductible_met_fen = fields.BigIntField(default=0)
    insurance_paid_fen = fields.BigIntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "payments_credit_accounts"


class Encounter(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    hospital_id = fields.CharField(max_length=40, db_index=True)
    subject_id = fields.CharField(max_length=64, db_index=True)
    account: fields.ForeignKeyRelation[CreditAccount] = fields.ForeignKeyField(
        "payments.CreditAccount", related_name="encounters", on_delete=fields.RESTRICT
    )
    account_id: str
    department = fields.CharField(max_length=100)
    status = fields.CharField(max_length=16, default=EncounterStatus.OPEN.value, db_index=True)
    hold_fen = fields.BigIntField()
    charged_fen = fields.BigIntField(default=0)  # net of refunds made before settlement
    opened_at = fields.DatetimeField(db_index=True)
    closed_at = fields.DatetimeField(null=True)
    closed_by = fields.CharField(max_length=16, null=True)  # ClosedBy
    # The bureau's short-lived token for this visit (from the e-voucher or our code).
    ec_token = fields.CharField(max_length=200, null=True)
    ec_token_expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payments_encounters"


class Charge(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    encounter: fields.ForeignKeyRelation[Encounter] = fields.ForeignKeyField(
        "payments.Encounter", related_name="charges", on_delete=fields.RESTRICT
    )
    encounter_id: str
    charge_id = fields.CharField(max_length=100)
    amount_fen = fields.BigIntField()
    refunded_fen = fields.BigIntField(default=0)
    request_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "payments_charges"
        unique_together = (("encounter", "charge_id"),)


class ChargeItem(Model):
    id = fields.IntField(primary_key=True)
    charge: fields.ForeignKeyRelation[Charge] = fields.ForeignKeyField(
        "payments.Charge", related_name="items", on_delete=fields.RESTRICT
    )
    charge_id: str
    position = fields.IntField()
    item_code = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    category = fields.CharField(max_length=64)
    quantity = fields.IntField()
    unit_price_fen = fields.BigIntField()
    insurance_class = fields.CharField(max_length=1)
    amount_fen = fields.BigIntField()

    class Meta:
        table = "payments_charge_items"


class Bill(Model):
    """What a settlement produced; `status` is a `BillStatus` (machine in payments/states.py).

    `collecting` means a provider call under a recorded key is (or was) in flight; the
    worker resumes it with the same key, so a crash there never collects twice.
    """

    id = fields.CharField(primary_key=True, max_length=40)
    encounter: fields.OneToOneRelation[Encounter] = fields.OneToOneField(
        "payments.Encounter", related_name="bill", on_delete=fields.RESTRICT
    )
    encounter_id: str
    hospital_id = fields.CharField(max_length=40, db_index=True)
    subject_id = fields.CharField(max_length=64, db_index=True)
    total_fen = fields.BigIntField()
    insurance_fen = fields.BigIntField()
    self_pay_fen = fields.BigIntField()
    # The split by segment and payer (payments/segments.py); they add up to total_fen.
    # insurance_fen = current + accumulated (both segments) + fund; self_pay_fen = the cash.
    current_account_fen = fields.BigIntField(default=0)
    self_segment_accumulated_fen = fields.BigIntField(default=0)
    self_segment_cash_fen = fields.BigIntField(default=0)
    fund_fen = fields.BigIntField(default=0)
    copay_accumulated_fen = fields.BigIntField(default=0)
    copay_cash_fen = fields.BigIntField(default=0)
    self_paid_items_fen = fields.BigIntField(default=0)
    rule_version = fields.CharField(max_length=40, default="")
    bureau_settlement_id = fields.CharField(max_length=60, null=True)
    # Daily-batch hospitals: the batch that collects this bill with the patient's day.
    batch_id = fields.CharField(max_length=60, null=True)
    refunded_insurance_fen = fields.BigIntField(default=0)
    refunded_self_pay_fen = fields.BigIntField(default=0)
    collected_fen = fields.BigIntField(default=0)
    paid_out_fen = fields.BigIntField(default=0)
    status = fields.CharField(max_length=20, db_index=True)  # BillStatus
    retries = fields.IntField(default=0)  # scheduled retries made so far
    next_retry_at = fields.DatetimeField(null=True)
    due_at = fields.DatetimeField()
    overdue_at = fields.DatetimeField(null=True)
    paid_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "payments_bills"

    @property
    def outstanding_fen(self) -> int:
        """Self-pay still owed by the resident (never negative: overpayment is paid out)."""
        owed: int = self.self_pay_fen - self.refunded_self_pay_fen - self.collected_fen
        return max(0, owed)


class BillLine(Model):
    id = fields.IntField(primary_key=True)
    bill: fields.ForeignKeyRelation[Bill] = fields.ForeignKeyField(
        "payments.Bill", related_name="lines", on_delete=fields.RESTRICT
    )
    bill_id: str
    charge_ref = fields.CharField(max_length=40)  # Charge.id
    hospital_charge_id = fields.CharField(max_length=100)  # the hospital's own charge_id
    position = fields.IntField()
    item_code = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    category = fields.CharField(max_length=64)
    quantity = fields.IntField()
    unit_price_fen = fields.BigIntField()
    insurance_class = fields.CharField(max_length=1)
    amount_fen = fields.BigIntField()
    insurance_fen = fields.BigIntField()
    self_pay_fen = fields.BigIntField()

    class Meta:
        table = "payments_bill_lines"


class Collection(Model):
    """One attempt to move money through the provider. Its id is the idempotency key
    given to the provider, so repeating the call can never move the money twice."""

    id = fields.CharField(primary_key=True, max_length=40)
    bill: fields.ForeignKeyRelation[Bill] = fields.ForeignKeyField(
        "payments.Bill", related_name="collections", on_delete=fields.RESTRICT
    )
    bill_id: str
    kind = fields.CharField(max_length=16)  # CollectionKind
    trigger = fields.CharField(max_length=16)  # CollectionTrigger
    amount_fen = fields.BigIntField()
    payment_method = fields.CharField(max_length=64)
    status = fields.CharField(max_length=16, db_index=True)  # CollectionStatus
    reason = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)
    # While pending: nobody else calls the provider for it before this time. A live caller
    # renews it; a crashed one stops, so the worker resumes it within seconds.
    leased_until = fields.DatetimeField(null=True)

    class Meta:
        table = "payments_collections"


class Refund(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    encounter: fields.ForeignKeyRelation[Encounter] = fields.ForeignKeyField(
        "payments.Encounter", related_name="refunds", on_delete=fields.RESTRICT
    )
    encounter_id: str
    charge: fields.ForeignKeyRelation[Charge] = fields.ForeignKeyField(
        "payments.Charge", related_name="refunds", on_delete=fields.RESTRICT
    )
    charge_id: str
    hospital_id = fields.CharField(max_length=40, db_index=True)
    hospital_charge_id = fields.CharField(max_length=100)
    refund_id = fields.CharField(max_length=100)
    amount_fen = fields.BigIntField()
    insurance_fen = fields.BigIntField()
    self_pay_fen = fields.BigIntField()
    after_settlement = fields.BooleanField()
    request_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "payments_refunds"
        unique_together = (("encounter", "refund_id"),)


class LedgerTransfer(Model):
    """A balanced transfer. Append-only: corrections are new transfers."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=120, unique=True)
    kind = fields.CharField(max_length=16)
    hospital_id = fields.CharField(max_length=40, null=True, db_index=True)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "payments_ledger_transfers"

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("ledger transfers are append-only")


class LedgerEntry(Model):
    id = fields.BigIntField(primary_key=True)
    transfer: fields.ForeignKeyRelation[LedgerTransfer] = fields.ForeignKeyField(
        "payments.LedgerTransfer", related_name="entries", on_delete=fields.RESTRICT
    )
    transfer_id: int
    account = fields.CharField(max_length=120, db_index=True)
    amount_fen = fields.BigIntField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "payments_ledger_entries"

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("ledger entries are append-only")


class OutboxEvent(Model):
    """An event for the webhook of a hospital, written in the transaction of the change."""

    id = fields.CharField(primary_key=True, max_length=40)
    hospital_id = fields.CharField(max_length=40, db_index=True)
    type = fields.CharField(max_length=40)
    payload: dict[str, Any] = fields.JSONField()
    status = fields.CharField(max_length=16, default=OutboxStatus.PENDING.value)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payments_outbox"


class WebhookDelivery(Model):
    """The delivery log: one row per attempt."""

    id = fields.BigIntField(primary_key=True)
    event: fields.ForeignKeyRelation[OutboxEvent] = fields.ForeignKeyField(
        "payments.OutboxEvent", related_name="deliveries", on_delete=fields.RESTRICT
    )
    event_id: str
    attempt = fields.IntField()
    url = fields.CharField(max_length=500)
    status_code = fields.IntField(null=True)
    error = fields.CharField(max_length=200, null=True)
    duration_ms = fields.IntField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "payments_webhook_deliveries"


class BureauSettlement(Model):
    """One settlement at the insurance bureau. Its id is the key the bureau sees, so asking
    again after a timeout or a crash returns the first settlement instead of a second one.

    `status` is a `BureauStatus`: pending (asked, answer unknown or not yet booked),
    settled (booked into a bill), reversed.
    """

    id = fields.CharField(primary_key=True, max_length=60)
    encounter_id = fields.CharField(max_length=40, unique=True)
    hospital_id = fields.CharField(max_length=40, db_index=True)
    subject_id = fields.CharField(max_length=64)
    status = fields.CharField(max_length=16, db_index=True)
    closed_by = fields.CharField(max_length=16)
    attempts = fields.IntField(default=0)
    reason = fields.CharField(max_length=64, null=True)
    result: dict[str, Any] | None = fields.JSONField(null=True)
    next_attempt_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payments_bureau_settlements"


class SettlementBatch(Model):
    """A hospital's daily batch: one per hospital and local day, so a rerun finds it."""

    id = fields.CharField(primary_key=True, max_length=60)  # batch:<hospital>:<day>
    hospital_id = fields.CharField(max_length=40, db_index=True)
    day = fields.DateField()
    status = fields.CharField(max_length=16)  # running | done
    encounters = fields.IntField(default=0)
    charges = fields.IntField(default=0)
    amount_fen = fields.BigIntField(default=0)
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payments_settlement_batches"


class SandboxInsured(Model):
    """The sandbox bureau's books: a test persona's standing in the medical year."""

    subject_id = fields.CharField(primary_key=True, max_length=64)
    category = fields.CharField(max_length=32)
    behaviour = fields.CharField(max_length=16, default="")  # "", timeout_once, refuse
    medical_year = fields.IntField()  # the year the medical year (April-March) starts in
    current_account_fen = fields.BigIntField(default=0)
    accumulated_account_fen = fields.BigIntField(default=0)
    deductible_used_fen = fields.BigIntField(default=0)
    fund_used_fen = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "payments_bureau_sandbox_insured"


class SandboxBureauOperation(Model):
    """The sandbox bureau's record of each settle/reverse, by the caller's key."""

    key = fields.CharField(primary_key=True, max_length=60)
    kind = fields.CharField(max_length=16)
    subject_id = fields.CharField(max_length=64)
    result: dict[str, Any] = fields.JSONField()
    attempts = fields.IntField(default=1)
    created_at = fields.DatetimeField()

    class Meta:
        table = "payments_bureau_sandbox_operations"


class SandboxOperation(Model):
    """The books of the sandbox processor (standing in for the card processor)."""

    key = fields.CharField(primary_key=True, max_length=60)
    kind = fields.CharField(max_length=16)
    payment_method = fields.CharField(max_length=64)
    amount_fen = fields.BigIntField()
    outcome = fields.CharField(max_length=32)
    attempts = fields.IntField(default=1)
    created_at = fields.DatetimeField()

    class Meta:
        table = "payments_sandbox_operations"


# -- credit scores and e-invoices (payments/credit.py, payments/invoices.py) -----------------


class CreditScore(Model):
    """The bureau's last answer for a credit account and the limit it earned (one per
    account); `reasons` are the sentences the resident is shown."""

    account_id = fields.CharField(primary_key=True, max_length=40)
    tier = fields.CharField(max_length=16)
    score = fields.IntField(null=True)
    reasons: list[str] = fields.JSONField()
    pending = fields.BooleanField(default=False)  # the bureau did not answer: provisional
    checked_at = fields.DatetimeField()
    next_check_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "payments_credit_scores"


class Invoice(Model):
    """A medical e-invoice (医疗收费电子票据): `blue` for a settled bill, `red` (冲红) for a
    refund after settlement, referring to the blue one. `content` is the signed document;
    the number is the row id (10 digits), so it is unique and never reused."""

    id = fields.BigIntField(primary_key=True)
    # bill:<bill id> or refund:<refund id>: one invoice per bill and per refund, ever.
    issue_key = fields.CharField(max_length=80, unique=True)
    kind = fields.CharField(max_length=8)  # InvoiceKind
    code = fields.CharField(max_length=8)
    check_code = fields.CharField(max_length=8)
    bill_id = fields.CharField(max_length=40, db_index=True)
    hospital_id = fields.CharField(max_length=40, db_index=True)
    subject_id = fields.CharField(max_length=64, db_index=True)  # the patient
    payer_subject_id = fields.CharField(max_length=64, db_index=True)
    original_id = fields.BigIntField(null=True)  # red: the blue invoice it reverses
    total_fen = fields.BigIntField()
    content: dict[str, Any] = fields.JSONField()
    kid = fields.CharField(max_length=80)
    signature = fields.CharField(max_length=120)
    issued_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "payments_invoices"
