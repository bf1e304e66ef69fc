"""A hospital's daily reconciliation statement, from the domain's records and from the ledger.

The two must agree: `ledger` in the statement is computed from ledger entries only, the
other totals from encounters, bills, refunds and collections.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from auth.api import Principal
from payments import invoices, ledger
from payments.hospitals import hospital_of
from payments.models import (
    Bill,
    Charge,
    Collection,
    Encounter,
    LedgerEntry,
    Refund,
    SettlementBatch,
)
from payments.states import UNPAID_BILLS, CollectionKind, CollectionStatus


@dataclass(frozen=True)
class Totals:
    count: int
    amount_fen: int
    insurance_fen: int
    self_pay_fen: int


@dataclass(frozen=True)
class LedgerTotals:
    """Net postings of the day's transfers for this hospital, per kind of account."""

    hospital_fen: int
    insurance_fund_fen: int
    resident_fen: int
    provider_clearing_fen: int
    personal_current_fen: int = 0
    personal_accumulated_fen: int = 0


@dataclass(frozen=True)
class BatchLine:
    """A daily batch of the hospital (its local day), with what it charged."""

    id: str
    day: date
    status: str
    encounters: int
    charges: int
    amount_fen: int


@dataclass(frozen=True)
class Statement:
    hospital_id: str
    date: date
    encounters_opened: int
    charges: Totals
    settlements: Totals
    refunds_before_settlement: Totals
    refunds_after_settlement: Totals
    collected_fen: int
    paid_out_fen: int
    outstanding_fen: int
    ledger: LedgerTotals
    batches: list[BatchLine] = field(default_factory=list)
    invoices: invoices.InvoiceDay = field(default_factory=lambda: invoices.InvoiceDay(0, 0, 0, []))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _totals(rows: list[tuple[int, int, int]]) -> Totals:
    return Totals(
        count=len(rows),
        amount_fen=sum(r[0] for r in rows),
        insurance_fen=sum(r[1] for r in rows),
        self_pay_fen=sum(r[2] for r in rows),
    )


async def daily_statement(principal: Principal, day: date) -> Statement:
    """The statement of the client's hospital for one UTC day."""
    hospital_id = hospital_of(principal)
    start, end = day_bounds(day)
    span = {"created_at__gte": start, "created_at__lt": end}
    opened = await Encounter.filter(
        hospital_id=hospital_id, opened_at__gte=start, opened_at__lt=end
    ).count()
    charges = cast(
        list[int],
        await Charge.filter(encounter__hospital_id=hospital_id, **span).values_list(
            "amount_fen", flat=True
        ),
    )
    bills = await Bill.filter(hospital_id=hospital_id, **span).values_list(
        "total_fen", "insurance_fen", "self_pay_fen"
    )
    refunds = await Refund.filter(hospital_id=hospital_id, **span).values_list(
        "amount_fen", "insurance_fen", "self_pay_fen", "after_settlement"
    )
    moved = await Collection.filter(
        bill__hospital_id=hospital_id,
        status=CollectionStatus.SUCCEEDED,
        resolved_at__gte=start,
        resolved_at__lt=end,
    ).values_list("kind", "amount_fen")
    unpaid = await Bill.filter(hospital_id=hospital_id, status__in=UNPAID_BILLS, **span)
    entries = await LedgerEntry.filter(
        transfer__hospital_id=hospital_id,
        transfer__created_at__gte=start,
        transfer__created_at__lt=end,
    ).values_list("account", "amount_fen")
    batches = await SettlementBatch.filter(hospital_id=hospital_id, day=day).order_by("id")
    by_kind: dict[str, int] = {}
    for account, amount in entries:
        kind = ledger.account_kind(account)
        by_kind[kind] = by_kind.get(kind, 0) + amount
    return Statement(
        hospital_id=hospital_id,
        date=day,
        encounters_opened=opened,
        charges=Totals(len(charges), sum(charges), 0, 0),
        settlements=_totals([(int(a), int(b), int(c)) for a, b, c in bills]),
        refunds_before_settlement=_totals([(a, i, s) for a, i, s, after in refunds if not after]),
        refunds_after_settlement=_totals([(a, i, s) for a, i, s, after in refunds if after]),
        collected_fen=sum(a for k, a in moved if k == CollectionKind.COLLECT),
        paid_out_fen=sum(a for k, a in moved if k == CollectionKind.PAYOUT),
        outstanding_fen=sum(b.outstanding_fen for b in unpaid),
        ledger=LedgerTotals(
            hospital_fen=by_kind.get("hospital", 0),
            insurance_fund_fen=by_kind.get(ledger.INSURANCE_FUND, 0),
            resident_fen=by_kind.get("resident", 0),
            provider_clearing_fen=by_kind.get(ledger.PROVIDER_CLEARING, 0),
            personal_current_fen=by_kind.get("personal_current", 0),
            personal_accumulated_fen=by_kind.get("personal_accumulated", 0),
        ),
        batches=[
            BatchLine(b.id, b.day, b.status, b.encounters, b.charges, b.amount_fen) for b in batches
        ],
        invoices=await invoices.invoices_of_day(hospital_id, day),
    )


def statement_csv(statement: Statement) -> str:
    """One row per line of the statement: `section,count,amount_fen,insurance_fen,self_pay_fen`
    and, on the invoices' rows (`invoice_blue` / `invoice_red`, one per invoice), `number`
    and `bill_id`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["section", "count", "amount_fen", "insurance_fen", "self_pay_fen", "number", "bill_id"]
    )
    writer.writerow(["encounters_opened", statement.encounters_opened, "", "", ""])
    for name in (
        "charges",
        "settlements",
        "refunds_before_settlement",
        "refunds_after_settlement",
    ):
        t: Totals = getattr(statement, name)
        writer.writerow([name, t.count, t.amount_fen, t.insurance_fen, t.self_pay_fen])
    writer.writerow(["collected", "", statement.collected_fen, "", statement.collected_fen])
    writer.writerow(["paid_out", "", statement.paid_out_fen, "", statement.paid_out_fen])
    writer.writerow(["outstanding", "", statement.outstanding_fen, "", statement.outstanding_fen])
    for name, value in asdict(statement.ledger).items():
        writer.writerow([f"ledger_{name.removesuffix('_fen')}", "", value, "", ""])
    for batch in statement.batches:
        writer.writerow([f"batch_{batch.status}", batch.charges, batch.amount_fen, "", ""])
    for i in statement.invoices.invoices:
        row = [f"invoice_{i.kind}", 1, i.total_fen, i.insurance_fen, i.cash_fen]
        writer.writerow([*row, f"{i.code}-{i.number}", i.bill_id])
    return out.getvalue()
