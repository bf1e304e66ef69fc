"""Medical e-invoices (医疗收费电子票据): issued once per settled bill (`blue`) and once per
refund after settlement (`red`, 冲红, referring to the blue one), signed with the hospital's
key (payments/invoice_signing.py), read as JSON or PDF, verified by anyone at a public
endpoint that shows only what the paper shows.

Issuing is idempotent by `issue_key` (a unique column): settlement issues inside its own
transaction, and every read issues a missing one, so a crash never leaves a settled bill
without its invoice nor gives it two.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.db import sql_for
from app.errors import NotFound, RateLimited
from auth.api import Principal, guardians_of, subject_profile
from payments import invoice_signing as signing
from payments import ledger
from payments.config import PaymentsRuntime
from payments.errors import BillNotSettled
from payments.hospitals import hospital_of
from payments.models import (
    Bill,
    BillLine,
    CreditAccount,
    Encounter,
    Hospital,
    Invoice,
    LedgerEntry,
    Refund,
)
from payments.states import EncounterStatus
from payments.store import as_json, connection, loaded

if TYPE_CHECKING:
    from payments.settlement import Booked

VERIFY_PER_MINUTE = 30  # per client address, at the public endpoint
# 票据代码: 31 (Shanghai) 06 (medical) 01 (outpatient) + the two-digit year of issue. Our own
# layout: the real codes are assigned by the finance bureau per issuing unit.
CODE_PREFIX = "310601"
CLASS_NAMES = {"A": "甲类", "B": "乙类", "C": "丙类"}


class InvoiceKind(StrEnum):
    BLUE = "blue"  # a receipt for a settled bill
    RED = "red"  # 冲红: reverses (part of) a blue invoice after a refund


def number_of(invoice: Invoice) -> str:
    return f"{invoice.id:010d}"


def verify_url(ctx: AppContext, invoice: Invoice) -> str:
    base = ctx.settings.public_base_url.rstrip("/")
    return f"{base}/v1/invoices/verify?number={number_of(invoice)}&check={invoice.check_code}"


# -- issuing ----------------------------------------------------------------------------------


def split_of(bill: Bill) -> dict[str, int]:
    """The bill's split by payer and by segment, in fen (payer parts add up to the total)."""
    accumulated = bill.self_segment_accumulated_fen + bill.copay_accumulated_fen
    cash = bill.self_segment_cash_fen + bill.copay_cash_fen + bill.self_paid_items_fen
    fund, current = bill.fund_fen, bill.current_account_fen
    if fund + current + accumulated + cash != bill.total_fen:
        # A bill from before the split by segments: insurance and self-pay only.
        fund, current, accumulated, cash = bill.insurance_fen, 0, 0, bill.self_pay_fen
    return {
        "fund_fen": fund,
        "current_account_fen": current,
        "accumulated_account_fen": accumulated,
        "cash_fen": cash,
        "self_segment_fen": bill.self_segment_accumulated_fen + bill.self_segment_cash_fen,
        "copay_fen": bill.copay_accumulated_fen + bill.copay_cash_fen,
        "self_paid_items_fen": bill.self_paid_items_fen,
    }


async def _parties(
    ctx: AppContext,
    encounter: Encounter,
    payer: CreditAccount | None = None,
    hospital: Hospital | None = None,
) -> dict[str, Any]:
    """Hospital, department, the patient and (when another person's credit paid) the payer,
    every person masked."""
    now = ctx.clock.now()
    if hospital is None:
        hospital = await Hospital.get(id=encounter.hospital_id)
    if payer is None:
        payer = await CreditAccount.get(id=encounter.account_id)
    patient = await subject_profile(encounter.subject_id, now=now)
    parties: dict[str, Any] = {
        "hospital": {"id": hospital.id, "name": hospital.name, "tier": hospital.tier},
        "department": encounter.department,
        "encounter_id": encounter.id,
        "patient": {"masked_name": patient.masked_name if patient else None},
        "payer": None,
        # Popped before signing: ids of people never go on the paper.
        "patient_subject_id": encounter.subject_id,
        "payer_subject_id": payer.subject_id,
    }
    if payer.subject_id != encounter.subject_id:
        profile = await subject_profile(payer.subject_id, now=now)
        parties["payer"] = {"masked_name": profile.masked_name if profile else None}
    return parties


async def _issue(
    ctx: AppContext,
    *,
    issue_key: str,
    kind: InvoiceKind,
    bill: Bill,
    parties: dict[str, Any],
    body: dict[str, Any],
    issued_at: datetime,
    original: Invoice | None = None,
) -> Invoice:
    """Create, number, sign and store one invoice (inside the caller's transaction)."""
    hospital_id = bill.hospital_id
    key = signing.hospital_key(signing.master_secret(ctx), hospital_id)
    patient_subject_id = parties.pop("patient_subject_id")
    payer_subject_id = parties.pop("payer_subject_id")
    values: dict[str, Any] = {
        "issue_key": issue_key,
        "kind": kind.value,
        "code": f"{CODE_PREFIX}{issued_at:%y}",
        "check_code": "",
        "bill_id": bill.id,
        "hospital_id": hospital_id,
        "subject_id": patient_subject_id,
        "payer_subject_id": payer_subject_id,
        "original_id": original.id if original else None,
        "total_fen": body["total_fen"],
        "content": "{}",
        "kid": signing.kid_of(hospital_id),
        "signature": "",
        "issued_at": issued_at,
    }
    # The number is the row's id, and the signed content holds the number: insert, then
    # sign and fill in (hand-written: the ORM's create and save cost more than the SQL).
    conn = connection()
    sql = sql_for(conn, _INSERT_SQL, len(_COLUMNS))
    inserted = await conn.execute_query_dict(sql, [values[c] for c in _COLUMNS])
    values["id"] = int(inserted[0]["id"])
    content = {
        "type": "medical_outpatient_e_invoice",
        "kind": str(kind),
        "code": values["code"],
        "number": f"{values['id']:010d}",
        "issued_at": issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "bill_id": bill.id,
        **parties,
        **body,
        "original": None
        if original is None
        else {"code": original.code, "number": number_of(original)},
    }
    signature = signing.sign(key, content)
    values.update(content=content, signature=signature, check_code=signing.check_code(signature))
    await conn.execute_query(
        sql_for(conn, _SIGNED_SQL, 4),
        [as_json(content), signature, values["check_code"], values["id"]],
    )
    row: Invoice = loaded(Invoice, values)
    return row


_COLUMNS = (
    "issue_key",
    "kind",
    "code",
    "check_code",
    "bill_id",
    "hospital_id",
    "subject_id",
    "payer_subject_id",
    "original_id",
    "total_fen",
    "content",
    "kid",
    "signature",
    "issued_at",
)
_INSERT_SQL = (
    f"INSERT INTO payments_invoices ({', '.join(_COLUMNS)}) "  # noqa: S608 (constants)
    f"VALUES ({', '.join(['{}'] * len(_COLUMNS))}) RETURNING id"
)
_SIGNED_SQL = (
    "UPDATE payments_invoices SET content = {}, signature = {}, check_code = {} WHERE id = {}"
)


async def issue_for_bill(
    ctx: AppContext,
    bill: Bill,
    *,
    booked: Booked | None = None,
) -> Invoice:
    """The bill's (blue) invoice, issued now if it has none. Call it inside the settlement's
    transaction (passing what the booking already read), or anywhere after: the unique
    `issue_key` keeps it to one."""
    hospital: Hospital | None = None
    if booked is None:
        existing = await Invoice.get_or_none(issue_key=f"bill:{bill.id}")
        if existing is not None:
            return existing
        encounter = await Encounter.get(id=bill.encounter_id)
        payer = await CreditAccount.get(id=encounter.account_id)
        lines = await BillLine.filter(bill_id=bill.id).order_by("position")
    else:
        # The booking created the bill in this transaction, so it has no invoice yet (and
        # the unique issue_key would refuse a second one anyway).
        encounter, payer, hospital = booked.encounter, booked.payer, booked.hospital
        lines = sorted(booked.lines, key=lambda line: line.position)
    body = {
        "lines": [
            {
                "item_code": line.item_code,
                "name": line.name,
                "category": line.category,
                "insurance_class": line.insurance_class,
                "quantity": line.quantity,
                "unit_price_fen": line.unit_price_fen,
                "amount_fen": line.amount_fen,
            }
            for line in lines
        ],
        "total_fen": bill.total_fen,
        "split": split_of(bill),
    }
    parties = await _parties(ctx, encounter, payer, hospital)

    async def make() -> Invoice:
        return await _issue(
            ctx,
            issue_key=f"bill:{bill.id}",
            kind=InvoiceKind.BLUE,
            bill=bill,
            parties=parties,
            body=body,
            issued_at=bill.created_at,
        )

    if booked is not None:
        # No race to lose (nobody else sees the bill before the booking commits), so no
        # savepoint either.
        return await make()
    return await _store_once(ctx, f"bill:{bill.id}", make)


async def _store_once(ctx: AppContext, issue_key: str, make: Any) -> Invoice:
    # A savepoint: losing the race to another process leaves the caller's transaction usable.
    try:
        async with in_transaction():
            created: Invoice = await make()
            return created
    except IntegrityError:
        return await Invoice.get(issue_key=issue_key)


async def _red_split(refund: Refund) -> dict[str, int]:
    """The refund's split by payer, negative, exactly as its ledger transfer (same
    transaction) booked it back: the fund, the patient's current-year and accumulated
    accounts, and cash."""
    booked = await LedgerEntry.filter(
        transfer__key=f"refund:{refund.encounter_id}:{refund.refund_id}"
    ).values_list("account", "amount_fen")
    by_kind: dict[str, int] = {}
    for account, amount in booked:
        kind = ledger.account_kind(str(account))
        by_kind[kind] = by_kind.get(kind, 0) + int(amount)
    return {
        "fund_fen": by_kind.get(ledger.INSURANCE_FUND, 0),
        "current_account_fen": by_kind.get("personal_current", 0),
        "accumulated_account_fen": by_kind.get("personal_accumulated", 0),
        "cash_fen": -refund.self_pay_fen,
    }


async def issue_for_refund(ctx: AppContext, refund: Refund) -> Invoice | None:
    """The red invoice of a refund after settlement (None before settlement: the bill then
    simply bills less). Refers to the bill's blue invoice, issuing that first if needed."""
    if not refund.after_settlement:
        return None
    existing = await Invoice.get_or_none(issue_key=f"refund:{refund.id}")
    if existing is not None:
        return existing
    bill = await Bill.get(encounter_id=refund.encounter_id)
    original = await issue_for_bill(ctx, bill)
    lines = await BillLine.filter(bill_id=bill.id, charge_ref=refund.charge_id).order_by("position")
    names = "、".join(line.name for line in lines)[:120]
    body = {
        "lines": [
            {
                "item_code": refund.hospital_charge_id,
                "name": f"退费：{names}" if names else "退费",
                "category": "refund",
                "insurance_class": "",
                "quantity": 1,
                "unit_price_fen": -refund.amount_fen,
                "amount_fen": -refund.amount_fen,
            }
        ],
        "total_fen": -refund.amount_fen,
        "split": await _red_split(refund),
        "refund_id": refund.refund_id,
    }
    parties = await _parties(ctx, await Encounter.get(id=refund.encounter_id))
    return await _store_once(
        ctx,
        f"refund:{refund.id}",
        lambda: _issue(
            ctx,
            issue_key=f"refund:{refund.id}",
            kind=InvoiceKind.RED,
            bill=bill,
            parties=parties,
            body=body,
            issued_at=refund.created_at,
            original=original,
        ),
    )


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillInvoices:
    """A bill's blue invoice and the red ones reversing it, oldest first."""

    blue: Invoice
    red: list[Invoice]


async def may_read_bill(principal: Principal, bill: Bill) -> bool:
    """The hospital that billed, the patient, the payer and the patient's guardians."""
    if not principal.is_resident:
        return principal.tenant_id == bill.hospital_id
    me = principal.subject_id
    if me is None:
        return False
    if me == bill.subject_id:
        return True
    encounter = await Encounter.get(id=bill.encounter_id)
    if me == encounter.subject_id:
        return True
    payer = await CreditAccount.get(id=encounter.account_id)
    return me == payer.subject_id or me in await guardians_of(encounter.subject_id)


async def invoices_of_bill(ctx: AppContext, principal: Principal, bill_id: str) -> BillInvoices:
    """The invoices of a bill the caller may read (404 otherwise, so existence never leaks);
    409 `bill_not_settled` while the encounter behind it is not settled."""
    bill = await Bill.get_or_none(id=bill_id)
    if bill is None or not await may_read_bill(principal, bill):
        raise NotFound("no such bill")
    encounter = await Encounter.get(id=bill.encounter_id)
    if encounter.status != EncounterStatus.SETTLED:
        raise BillNotSettled(
            "the bill is not settled yet; its invoice is issued at settlement",
            extra={"encounter_status": str(encounter.status)},
        )
    blue = await issue_for_bill(ctx, bill)
    for refund in await Refund.filter(encounter_id=bill.encounter_id, after_settlement=True):
        await issue_for_refund(ctx, refund)
    red = await Invoice.filter(original_id=blue.id).order_by("id")
    return BillInvoices(blue, red)


async def invoices_of_encounter(
    ctx: AppContext, principal: Principal, encounter_id: str
) -> BillInvoices:
    """The hospital's view: the invoices of one of its encounters (409 before settlement)."""
    encounter = await Encounter.get_or_none(id=encounter_id, hospital_id=hospital_of(principal))
    if encounter is None:
        raise NotFound("no such encounter")
    bill = await Bill.get_or_none(encounter_id=encounter_id)
    if bill is None:
        raise BillNotSettled(
            "the encounter is not settled yet; its invoice is issued at settlement",
            extra={"encounter_status": str(encounter.status)},
        )
    return await invoices_of_bill(ctx, principal, bill.id)


def local_zone(ctx: AppContext) -> timezone:
    return timezone(timedelta(hours=ctx.runtime(PaymentsRuntime).config.utc_offset_hours))


@dataclass(frozen=True)
class InvoiceBrief:
    """One invoice as a day's list shows it: blue or red, number, bill, amount and split."""

    kind: str
    code: str
    number: str
    bill_id: str
    total_fen: int
    insurance_fen: int  # the bureau's part (fund and personal accounts); negative when red
    cash_fen: int
    original_number: str | None  # red: the blue invoice it reverses
    issued_at: datetime


@dataclass(frozen=True)
class InvoiceDay:
    """The invoices a hospital issued on a UTC day (the statement's day), in number order;
    blue plus red totals are what the day finally billed."""

    count: int
    blue_total_fen: int
    red_total_fen: int
    invoices: list[InvoiceBrief]


async def invoices_of_day(hospital_id: str, day: date) -> InvoiceDay:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    rows = (
        await Invoice.filter(
            hospital_id=hospital_id, issued_at__gte=start, issued_at__lt=start + timedelta(days=1)
        )
        .order_by("id")
        .limit(10_000)
    )
    wanted = {r.original_id for r in rows if r.original_id} - {r.id for r in rows}
    known = {r.id: r for r in rows} | {i.id: i for i in await Invoice.filter(id__in=wanted)}
    briefs = [
        InvoiceBrief(
            kind=r.kind,
            code=r.code,
            number=number_of(r),
            bill_id=r.bill_id,
            total_fen=r.total_fen,
            insurance_fen=r.total_fen - int(r.content["split"]["cash_fen"]),
            cash_fen=int(r.content["split"]["cash_fen"]),
            original_number=number_of(known[r.original_id]) if r.original_id else None,
            issued_at=r.issued_at,
        )
        for r in rows
    ]
    return InvoiceDay(
        count=len(briefs),
        blue_total_fen=sum(b.total_fen for b in briefs if b.kind == InvoiceKind.BLUE),
        red_total_fen=sum(b.total_fen for b in briefs if b.kind == InvoiceKind.RED),
        invoices=briefs,
    )


# -- public verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What anyone holding the paper may learn: the paper's own fields, whether the
    signature holds, and whether red invoices have reversed it since."""

    invoice: Invoice
    signature_valid: bool
    reversed_by: list[Invoice]


async def verify_public(ctx: AppContext, number: str, check: str, client_ip: str) -> Verified:
    """Check an invoice from its number and 校验码 (404 for either wrong: same answer, so
    numbers cannot be probed), rate-limited per client address."""
    now = ctx.clock.now()
    hit = await ctx.kv.window_hit(
        ctx.kv.keys.key("payments", "invoice-verify", client_ip or "unknown"),
        now_ms=int(now.timestamp() * 1000),
        window_ms=60_000,
        limit=VERIFY_PER_MINUTE,
        member=secrets.token_hex(8),
    )
    if not hit.allowed:
        raise RateLimited(max(1, hit.retry_after_ms // 1000))
    found = await Invoice.get_or_none(id=int(number)) if number.isdigit() else None
    if found is None or not hmac.compare_digest(found.check_code.encode(), check.upper().encode()):
        raise NotFound("no invoice with this number and check code")
    key = signing.hospital_key(signing.master_secret(ctx), found.hospital_id)
    valid = found.kid == signing.kid_of(found.hospital_id) and signing.verify(
        key.public_key(), found.content, found.signature, signing.ALG
    )
    reversed_by = await Invoice.filter(original_id=found.id).order_by("id")
    return Verified(found, valid, reversed_by)


async def hospital_public_key(ctx: AppContext, hospital_id: str) -> signing.PublicJwk:
    """The JWK of the key a hospital signs its invoices with (404 for an unknown hospital)."""
    if not await Hospital.exists(id=hospital_id):
        raise NotFound("no such hospital")
    key = signing.hospital_key(signing.master_secret(ctx), hospital_id)
    return signing.public_jwk(key, signing.kid_of(hospital_id))
