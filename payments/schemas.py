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


class ClientCredentialsOut(BaseModel):
    client_id: str
    client_secret: str
    scope: str


class HospitalOut(BaseModel):
    id: str
    name: str
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
    insured: bool = True
    deductible_met_fen: Fen = Field(default=0, ge=0, le=MAX_FEN)


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


class BillOut(BaseModel):
    id: str
    encounter_id: str
    hospital_id: str
    status: Literal["collecting", "payment_pending", "paid", "overdue"]
    total_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
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


class PatientOut(BaseModel):
    masked_name: str | None
    age_group: str | None


class EncounterOut(BaseModel):
    id: str
    hospital_id: str
    department: str
    status: Literal["open", "settled"]
    hold_fen: Fen
    charged_fen: Fen
    opened_at: datetime
    closed_at: datetime | None
    patient: PatientOut | None = Field(
        default=None, description="the patient as the code showed them (when opened)"
    )


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
    status: Literal["settled", "payment_pending"]


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


class EncounterListQuery(_In):
    date: Day = Field(description="a local calendar day (the hospitals' zone, UTC+8 by default)")


class EncounterBillOut(BaseModel):
    id: str
    status: Literal["collecting", "payment_pending", "paid", "overdue"]
    settlement_status: Literal["settled", "payment_pending"]
    total_fen: Fen
    insurance_fen: Fen
    self_pay_fen: Fen
    outstanding_fen: Fen


class EncounterListItem(BaseModel):
    id: str
    department: str
    status: Literal["open", "settled"]
    hold_fen: Fen
    charged_fen: Fen = Field(description="charged so far, net of refunds before settlement")
    opened_at: datetime
    closed_at: datetime | None
    patient: PatientOut
    bill: EncounterBillOut | None = Field(description="the bill, once the encounter is settled")


class EncounterList(BaseModel):
    date: date
    encounters: list[EncounterListItem] = Field(description="newest first")
