"""Request and response schemas of the payments endpoints (amounts in integer fen)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from app.types import Day

Fen = int
MAX_FEN = 10**12


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HospitalIn(_In):
    name: str = Field(min_length=1, max_length=200)
    tier: int = Field(default=3, ge=1, le=3, description="1/2/3 = 一级/二级/三级")


class SettlementTimingIn(_In):
    settlement_mode: Literal["encounter", "daily"]
    batch_hour: int = Field(default=23, ge=0, le=23, description="local hour of the batch")


class SettlementTimingOut(BaseModel):
    hospital_id: str
    tier: int
    settlement_mode: Literal["encounter", "daily"]
    batch_hour: int


class ClientCredentialsOut(BaseModel):
    client_id: str
    client_secret: str
    scope: str


class HospitalOut(BaseModel):
    id: str
    name: str
    tier: int = 3
    client: ClientCredentialsOut


class WebhookIn(_In):
    # The column holds 500; the normalised URL can grow a little (a trailing slash).
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=480)]
    rotate_secret: bool = False


class WebhookOut(BaseModel):
    url: str
    secret: str = Field(description="HMAC-SHA256 key for the Suishen-Signature header")
    secret_version: int
    signature_header: str = "Suishen-Signature"


class InsuranceIn(_In):
    """A sandbox test persona (refused outside the sandbox bureau: 422
    insurance_declaration_refused)."""

    insured: bool = True
    persona: (
        Literal[
            "employee",
            "employee_45",
            "retired",
            "retired_before_2001",
            "uninsured",
            "timeout",
            "suspended",
            "slow",
        ]
        | None
    ) = None
    deductible_met_fen: Fen = Field(default=0, ge=0, le=MAX_FEN)
    current_account_fen: Fen = Field(default=0, ge=0, le=MAX_FEN)
    accumulated_account_fen: Fen = Field(default=0, ge=0, le=MAX_FEN)
    fund_used_fen: Fen = Field(default=0, ge=0, le=MAX_FEN)


class EnrollIn(_In):
    payment_method: str = Field(min_length=1, max_length=64)
    insurance: InsuranceIn | None = None


class EncounterBrief(BaseModel):
    id: str
    hospital_id: str
    department: str
    hold_fen: Fen
    charged_fen: Fen
    opened_at: datetime


class BillLineOut(BaseModel):
    charge_id: str
    item_code: str
    name: str
    category: str
    quantity: int
    unit_price_fen: Fen
    insurance_class: str
    amount_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen


class SegmentsOut(BaseModel):
    """The split by segment and payer, in fen; with the cash parts they add up to the total."""

    self_paid_items_fen: Fen = Field(description="class C whole and class B's share (cash)")
    current_account_fen: Fen = Field(description="当年账户")
    self_segment_accumulated_fen: Fen = Field(description="自负段 paid from 历年账户")
    self_segment_cash_fen: Fen = Field(description="自负段 paid in cash")
    fund_fen: Fen = Field(description="共付段 paid by the pooled fund (统筹基金)")
    copay_accumulated_fen: Fen = Field(description="共付段 patient share from 历年账户")
    copay_cash_fen: Fen = Field(description="共付段 patient share in cash")
    rule_version: str


class BillOut(BaseModel):
    id: str
    encounter_id: str
    hospital_id: str
    status: Literal["scheduled", "collecting", "payment_pending", "paid", "overdue"]
    total_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
    segments: SegmentsOut | None = None
    refunded_insurance_fen: Fen
    refunded_self_pay_fen: Fen
    collected_fen: Fen
    paid_out_fen: Fen
    outstanding_fen: Fen
    due_at: datetime
    paid_at: datetime | None
    next_retry_at: datetime | None
    created_at: datetime
    lines: list[BillLineOut] | None = None


class BillList(BaseModel):
    bills: list[BillOut]


class CreditOut(BaseModel):
    account_id: str
    status: Literal["active", "suspended"]
    limit_fen: Fen
    available_fen: Fen
    holds_fen: Fen
    unpaid_fen: Fen
    payment_method: str
    insured: bool
    open_encounters: list[EncounterBrief]
    unpaid_bills: list[BillOut]


class EncounterIn(_In):
    code: str = Field(min_length=1, max_length=2048)
    department: str = Field(min_length=1, max_length=100)
    insurance_voucher: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="the patient's medical-insurance e-voucher (医保电子凭证) as read; "
        "without it the bureau is asked with the identity our code verified",
    )


class PatientOut(BaseModel):
    masked_name: str | None
    age_group: str | None


class EncounterOut(BaseModel):
    id: str
    hospital_id: str
    department: str
    status: Literal["open", "settling", "settled"]
    hold_fen: Fen
    charged_fen: Fen
    opened_at: datetime
    closed_at: datetime | None
    patient: PatientOut | None = Field(
        default=None, description="the patient as the code showed them (when opened)"
    )
    ec_token: str | None = Field(
        default=None, description="the bureau's short-lived token for this visit (when opened)"
    )
    ec_token_expires_at: datetime | None = None


class ItemIn(_In):
    item_code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100_000)
    unit_price_fen: Fen = Field(ge=0, le=100_000_000)
    insurance_class: Literal["A", "B", "C"]


class ChargeIn(_In):
    charge_id: str = Field(min_length=1, max_length=100)
    items: list[ItemIn] = Field(min_length=1, max_length=200)


class ChargeItemOut(BaseModel):
    item_code: str
    name: str
    category: str
    quantity: int
    unit_price_fen: Fen
    insurance_class: str
    amount_fen: Fen


class ChargeOut(BaseModel):
    charge_id: str
    encounter_id: str
    amount_fen: Fen
    refunded_fen: Fen
    items: list[ChargeItemOut]
    hold_fen: Fen = Field(description="the encounter's hold after this charge")
    created_at: datetime


class SettlementOut(BaseModel):
    encounter_id: str
    bill_id: str
    total_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
    segments: SegmentsOut
    status: Literal["settled", "payment_pending"]


class QuoteLineOut(BaseModel):
    charge_id: str
    item_code: str
    insurance_class: str
    amount_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen


class QuoteOut(BaseModel):
    """What the bureau would settle now; closing settles exactly this if nothing changes."""

    encounter_id: str
    hospital_tier: int
    category: str | None = Field(description="the insured category the bureau reports")
    total_fen: Fen
    insurance_fen: Fen = Field(description="paid by the bureau (personal accounts and fund)")
    cash_fen: Fen = Field(description="what the patient will be charged")
    credit_used_fen: Fen = Field(description="the part charged on the patient's credit")
    hold_fen: Fen
    segments: SegmentsOut
    lines: list[QuoteLineOut]


class RefundIn(_In):
    refund_id: str = Field(min_length=1, max_length=100)
    charge_id: str = Field(min_length=1, max_length=100)
    amount_fen: Fen = Field(gt=0, le=MAX_FEN)


class RefundOut(BaseModel):
    refund_id: str
    encounter_id: str
    charge_id: str
    amount_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
    after_settlement: bool
    status: Literal["succeeded"] = "succeeded"
    created_at: datetime


class PayIn(_In):
    payment_method: str | None = Field(default=None, min_length=1, max_length=64)


class StatementQuery(_In):
    date: Day
    format: Literal["json", "csv"] | None = None


class TotalsOut(BaseModel):
    count: int
    amount_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen


class LedgerTotalsOut(BaseModel):
    hospital_fen: Fen
    insurance_fund_fen: Fen
    resident_fen: Fen
    provider_clearing_fen: Fen
    personal_current_fen: Fen = 0
    personal_accumulated_fen: Fen = 0


class BatchOut(BaseModel):
    id: str
    day: date = Field(description="the batch's local day (the hospitals' zone)")
    status: Literal["running", "done"]
    encounters: int = Field(description="bills of the day the batch covered")
    charges: int = Field(description="charges made: one per patient")
    amount_fen: Fen


class InvoiceBriefOut(BaseModel):
    kind: Literal["blue", "red"]
    code: str
    number: str
    bill_id: str
    total_fen: Fen = Field(description="negative for a red invoice")
    insurance_fen: Fen = Field(description="the bureau's part (fund and personal accounts)")
    cash_fen: Fen = Field(description="the patient's cash part")
    original_number: str | None = Field(description="red: the blue invoice it reverses")
    issued_at: datetime


class InvoicesOfDayOut(BaseModel):
    """The invoices issued on the day, in number order (blue + red totals: what the day
    finally billed)."""

    count: int
    blue_total_fen: Fen
    red_total_fen: Fen
    invoices: list[InvoiceBriefOut]


class StatementOut(BaseModel):
    hospital_id: str
    date: date
    encounters_opened: int
    charges: TotalsOut
    settlements: TotalsOut
    refunds_before_settlement: TotalsOut
    refunds_after_settlement: TotalsOut
    collected_fen: Fen
    paid_out_fen: Fen
    outstanding_fen: Fen
    ledger: LedgerTotalsOut
    batches: list[BatchOut] = Field(
        default_factory=list, description="daily batches of that day (daily-batch hospitals)"
    )
    invoices: InvoicesOfDayOut = Field(description="the e-invoices issued that day")


class EncounterListQuery(_In):
    date: Day = Field(description="a local calendar day (the hospitals' zone, UTC+8 by default)")


class EncounterBillOut(BaseModel):
    id: str
    status: Literal["scheduled", "collecting", "payment_pending", "paid", "overdue"]
    settlement_status: Literal["settled", "payment_pending"]
    total_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
    outstanding_fen: Fen


class EncounterListItem(BaseModel):
    id: str
    department: str
    status: Literal["open", "settling", "settled"]
    hold_fen: Fen
    charged_fen: Fen = Field(description="charged so far, net of refunds before settlement")
    opened_at: datetime
    closed_at: datetime | None
    patient: PatientOut
    bill: EncounterBillOut | None = Field(description="the bill, once the encounter is settled")


class EncounterList(BaseModel):
    date: date
    encounters: list[EncounterListItem] = Field(description="newest first")


# -- e-invoices, credit limits, family (payments/invoice_routes.py, family_routes.py) ---------


class InvoiceQuery(_In):
    format: Literal["json", "pdf"] | None = Field(
        default=None, description="pdf, or send Accept: application/pdf"
    )


class InvoiceLineOut(BaseModel):
    item_code: str
    name: str
    category: str
    insurance_class: str
    quantity: int
    unit_price_fen: Fen = Field(description="negative on a red invoice")
    amount_fen: Fen = Field(description="negative on a red invoice")


class InvoiceSplitOut(BaseModel):
    """Who paid: the payer parts add up to the total; the segments say how it was split."""

    fund_fen: Fen = Field(description="医保统筹基金支付")
    current_account_fen: Fen = Field(description="个人账户当年账户支付")
    accumulated_account_fen: Fen = Field(description="个人账户历年账户支付")
    cash_fen: Fen = Field(description="个人现金支付")
    self_segment_fen: Fen = Field(default=0, description="自负: the deductible segment")
    copay_fen: Fen = Field(default=0, description="自付: the patient's share of the co-pay segment")
    self_paid_items_fen: Fen = Field(default=0, description="自费: class C and class B shares")


class MaskedPersonOut(BaseModel):
    masked_name: str | None


class InvoiceHospitalOut(BaseModel):
    id: str
    name: str
    tier: int


class InvoiceOriginalOut(BaseModel):
    code: str
    number: str


class InvoiceSignatureOut(BaseModel):
    alg: Literal["ES256"] = "ES256"
    kid: str
    value: str = Field(description="base64url r||s over the canonical JSON of `content`")
    public_key_url: str


class InvoiceOut(BaseModel):
    kind: Literal["blue", "red"]
    code: str = Field(description="票据代码")
    number: str = Field(description="票据号码 (10 digits)")
    check_code: str = Field(description="校验码, printed on the paper")
    issued_at: datetime
    bill_id: str
    encounter_id: str
    department: str
    hospital: InvoiceHospitalOut
    patient: MaskedPersonOut
    payer: MaskedPersonOut | None = Field(description="whose credit paid, when not the patient's")
    lines: list[InvoiceLineOut]
    total_fen: Fen
    split: InvoiceSplitOut
    original: InvoiceOriginalOut | None = Field(description="red: the invoice it reverses")
    refund_id: str | None = None
    verify_url: str
    signature: InvoiceSignatureOut
    content: dict[str, object] = Field(description="exactly what was signed")


class BillInvoicesOut(BaseModel):
    invoice: InvoiceOut
    red_invoices: list[InvoiceOut] = Field(description="冲红 invoices of refunds, oldest first")


class InvoiceDayQuery(_In):
    date: Day


class InvoiceDayOut(InvoicesOfDayOut):
    date: date


class InvoiceVerifyQuery(_In):
    number: str = Field(pattern=r"^[0-9]{10}$")
    check: str = Field(pattern=r"^[A-Za-z2-7]{6}$")


class InvoiceVerifyOut(BaseModel):
    """Only what the paper shows, and whether the signature holds."""

    signature_valid: bool
    status: Literal["valid", "reversed", "partly_reversed", "red"] = Field(
        description="reversed: red invoices cancel it entirely"
    )
    kind: Literal["blue", "red"]
    code: str
    number: str
    issued_at: datetime
    hospital_name: str
    department: str
    patient: MaskedPersonOut
    lines: list[InvoiceLineOut]
    total_fen: Fen
    split: InvoiceSplitOut
    original: InvoiceOriginalOut | None
    reversed_by: list[InvoiceOriginalOut]
    kid: str


class JwkOut(BaseModel):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    alg: Literal["ES256"]
    use: Literal["sig"]
    kid: str
    x: str
    y: str


class CreditLimitOut(BaseModel):
    """Why the limit is what it is."""

    tier: str | None = Field(description="A-E by score, starter (no file), provisional, frozen")
    score: int | None
    limit_fen: Fen
    available_fen: Fen
    status: Literal["active", "suspended"]
    provisional: bool = Field(description="the bureau did not answer; re-checked soon")
    reasons: list[str]
    grace_days: int = Field(description="days a bill may stay unpaid before it is overdue")
    overdue_bill_ids: list[str]
    checked_at: datetime | None
    next_check_at: datetime | None


class FamilyBillOut(BaseModel):
    bill: BillOut
    patient: MaskedPersonOut
    payer: MaskedPersonOut
    on_family_credit: bool = Field(description="treated on another person's credit line")


class FamilyBillList(BaseModel):
    bills: list[FamilyBillOut]
