"""Settlement: closing an encounter once, through the insurance bureau, into a bill split by
segment and payer, booked in the ledger, with the cash part handed to collection.

    close -> [tx 1] encounter marked closing (closed_at), a pending `BureauSettlement`
             whose id is the bureau's key
          -> bureau.settle(key)         (no transaction open: the bureau is elsewhere)
          -> [tx 2] bill + lines, ledger (one account per payer), encounter settled,
             outbox, `on_settled` hooks
          -> collection of the cash part (per encounter), or left to the daily batch

A crash or a bureau timeout between the steps leaves the pending settlement; whoever comes
next (a retried close, the auto-close job, the `payments-bureau` job) asks the bureau
again with the same key, which returns the first settlement, and books it once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.transactions import in_transaction

from app.context import AppContext
from app.db import sql_for
from app.errors import NotFound
from auth.api import Principal, subject_for_request
from payments import ledger, segments
from payments.bureau import BureauDown, BureauRefused, BureauTimeout, Claim
from payments.collection import collect, new_collection
from payments.config import PaymentsConfig, PaymentsRuntime
from payments.encounters import ITEM_FIELDS, find_encounter, visit_token
from payments.errors import BureauUnavailable, EncounterClosed, InsuranceRulesMissing
from payments.hospitals import hospital_of
from payments.insurance import allot
from payments.models import (
    Bill,
    BillLine,
    BureauSettlement,
    Collection,
    CreditAccount,
    Encounter,
    Hospital,
)
from payments.states import (
    ENCOUNTER,
    BillStatus,
    BureauStatus,
    ClosedBy,
    CollectionKind,
    CollectionTrigger,
    EncounterStatus,
    SettlementMode,
    SettlementStatus,
)
from payments.store import (
    as_json,
    bill_event,
    by_id,
    connection,
    emit_all,
    insert_rows,
    inserted,
    loaded,
    new_id,
    post_transfer,
    settlement_event,
    write,
    writes_together,
)


@dataclass(frozen=True)
class Billed:
    """A charge item as billed: its charge, the item, its amount net of refunds made
    before settlement."""

    charge_ref: str  # Charge.id
    charge_id: str  # the hospital's own charge_id
    item_code: str
    name: str
    category: str
    quantity: int
    unit_price_fen: int
    insurance_class: str
    amount_fen: int


@dataclass(frozen=True)
class Booked:
    """What the booking read and handed to the hooks so they read none of it again."""

    encounter: Encounter
    payer: CreditAccount  # the account the encounter was on (a guardian's for a dependent)
    hospital: Hospital
    lines: list[BillLine]


# Called inside the booking transaction, once per settled bill (e.g. the e-invoice).
SettledHook = Callable[[AppContext, Bill, Booked], Awaitable[None]]
on_settled: list[SettledHook] = []

# Refusals that are about the token, not the person: read the visit again and retry once.
TOKEN_REFUSALS = ("token_expired", "token_invalid")


def settlement_status(bill: Bill) -> SettlementStatus:
    """What the close endpoint reports: settled once nothing is owed, else payment_pending."""
    if bill.status == BillStatus.PAID:
        return SettlementStatus.SETTLED
    return SettlementStatus.PAYMENT_PENDING


async def close_encounter(ctx: AppContext, principal: Principal, encounter_id: str) -> Bill:
    """The hospital closes one of its encounters: settle it (once) and return its bill."""
    return await settle_encounter(
        ctx, hospital_id=hospital_of(principal), encounter_id=encounter_id
    )


def settlement_key(encounter_id: str) -> str:
    """The bureau's idempotency key for an encounter: one settlement per encounter."""
    return f"bst_{encounter_id}"


async def settle_encounter(
    ctx: AppContext,
    *,
    hospital_id: str,
    encounter_id: str,
    closed_by: ClosedBy = ClosedBy.HOSPITAL,
) -> Bill:
    """Settle the encounter once; 503 `insurance_bureau_unavailable` leaves it to the worker."""
    now = ctx.clock.now()
    lease = ctx.runtime(PaymentsRuntime).config.bureau_retry_after
    started = await _start_closing(hospital_id, encounter_id, closed_by, now, lease)
    if started is not None:
        record, encounter, hospital = started
        return await finish_settlement(
            ctx, record, encounter=encounter, hospital=hospital, leased=True
        )
    begun = await _begin(hospital_id, encounter_id, closed_by, now, lease)
    if begun is None:
        return await Bill.get(encounter_id=encounter_id)
    record, encounter, fresh = begun
    return await finish_settlement(ctx, record, encounter=encounter, leased=fresh)


# The common close: an open encounter of this hospital, not closing yet, is marked closing
# and its pending settlement recorded, leased to this caller. PostgreSQL does both in one
# statement (atomic without a transaction) and reads the hospital with them; no row means
# the encounter is no such one, and `_begin` finds out what it is.
_CLOSING_PG = """
WITH e AS (
  UPDATE payments_encounters SET closed_at = {0}, closed_by = {1}
  WHERE id = {2} AND hospital_id = {3} AND status = {4} AND closed_at IS NULL
  RETURNING *
), s AS (
  INSERT INTO payments_bureau_settlements (id, encounter_id, hospital_id, subject_id, status,
                                           closed_by, attempts, next_attempt_at, created_at)
  SELECT {5}, e.id, e.hospital_id, e.subject_id, {6}, {1}, 1, {7}, {0} FROM e
)
SELECT e.*, h.name AS h__name, h.created_at AS h__created_at, h.tier AS h__tier,
       h.settlement_mode AS h__settlement_mode, h.batch_hour AS h__batch_hour
FROM e JOIN payments_hospitals h ON h.id = e.hospital_id
"""
_CLOSING_SQL = (
    "UPDATE payments_encounters SET closed_at = {}, closed_by = {} "
    "WHERE id = {} AND hospital_id = {} AND status = {} AND closed_at IS NULL RETURNING *"
)
_HOSPITAL_PREFIX = "h__"


async def _start_closing(
    hospital_id: str, encounter_id: str, closed_by: ClosedBy, now: datetime, lease: timedelta
) -> tuple[BureauSettlement, Encounter, Hospital | None] | None:
    """The fast path of `_begin` for an encounter nobody has begun to close; None otherwise."""
    key = settlement_key(encounter_id)
    args = [now, closed_by.value, encounter_id, hospital_id, EncounterStatus.OPEN.value]
    conn = connection()
    hospital: Hospital | None = None
    if conn.capabilities.dialect == "postgres":
        pending = [key, BureauStatus.PENDING.value, now + lease]
        rows = await conn.execute_query_dict(sql_for(conn, _CLOSING_PG, 8), args + pending)
        if not rows:
            return None
        row = rows[0]
        columns = {k: row.pop(k) for k in list(row) if k.startswith(_HOSPITAL_PREFIX)}
        hospital_row = {k.removeprefix(_HOSPITAL_PREFIX): v for k, v in columns.items()}
        hospital = loaded(Hospital, {"id": row["hospital_id"], **hospital_row})
    else:
        async with in_transaction():
            conn = connection()
            rows = await conn.execute_query_dict(sql_for(conn, _CLOSING_SQL, 5), args)
            if not rows:
                return None
            row = rows[0]
            await insert_rows(
                conn,
                "payments_bureau_settlements",
                (
                    "id",
                    "encounter_id",
                    "hospital_id",
                    "subject_id",
                    "status",
                    "closed_by",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ),
                [
                    (
                        key,
                        encounter_id,
                        row["hospital_id"],
                        row["subject_id"],
                        BureauStatus.PENDING.value,
                        closed_by.value,
                        1,
                        now + lease,
                        now,
                    )
                ],
            )
    encounter: Encounter = loaded(Encounter, row)
    record: BureauSettlement = loaded(
        BureauSettlement,
        {
            "id": key,
            "encounter_id": encounter_id,
            "hospital_id": encounter.hospital_id,
            "subject_id": encounter.subject_id,
            "status": BureauStatus.PENDING.value,
            "closed_by": closed_by.value,
            "attempts": 1,
            "reason": None,
            "result": None,
            "next_attempt_at": now + lease,
            "created_at": now,
            "resolved_at": None,
        },
    )
    return record, encounter, hospital


async def _begin(
    hospital_id: str, encounter_id: str, closed_by: ClosedBy, now: datetime, lease: timedelta
) -> tuple[BureauSettlement, Encounter, bool] | None:
    """Mark the encounter closing (no more charges) and record the pending settlement,
    leased to this caller (the worker leaves it alone until the lease runs out). The flag
    says whether the record is new (and so already leased to us); None once settled.
    Another hospital's encounter is 404, read with the lock (one query, not two)."""
    async with in_transaction():
        encounter = (
            await Encounter.filter(id=encounter_id, hospital_id=hospital_id)
            .select_for_update()
            .first()
        )
        if encounter is None:
            raise NotFound("no such encounter")
        if encounter.status != EncounterStatus.OPEN:
            return None
        if encounter.closed_at is not None:
            record = await BureauSettlement.get_or_none(encounter_id=encounter.id)
            if record is not None:
                return record, encounter, False
        encounter.closed_at, encounter.closed_by = now, closed_by
        await encounter.save(update_fields=["closed_at", "closed_by"])
        record = await BureauSettlement.create(
            id=settlement_key(encounter.id),
            encounter_id=encounter.id,
            hospital_id=encounter.hospital_id,
            subject_id=encounter.subject_id,
            status=BureauStatus.PENDING,
            closed_by=closed_by,
            attempts=1,
            next_attempt_at=now + lease,
            created_at=now,
        )
        return record, encounter, True


@dataclass(frozen=True)
class Visit:
    """What the bureau is asked about: the encounter, its hospital, its billed items."""

    encounter: Encounter
    hospital: Hospital
    billed: list[Billed]

    @property
    def claim(self) -> Claim:
        lines = [segments.Line(b.amount_fen, b.insurance_class) for b in self.billed]  # type: ignore[arg-type]
        return Claim(lines=lines, tier=self.hospital.tier)


async def load_visit(encounter: Encounter, hospital: Hospital | None = None) -> Visit:
    if hospital is None:
        hospital = await Hospital.get(id=encounter.hospital_id)
    return Visit(encounter, hospital, await _billed_items(encounter.id))


async def ask_bureau(ctx: AppContext, visit: Visit, *, key: str | None = None) -> segments.Segments:
    """The bureau's split of the visit: settled under `key`, or pre-settled without one.

    A refusal about the person (not insured, suspended) settles everything as cash; a
    refusal about the token reads the visit again and asks once more.
    """
    rt = ctx.runtime(PaymentsRuntime)
    now = ctx.clock.now()
    for attempt in (1, 2):
        token = await visit_token(ctx, visit.encounter, renew=attempt > 1)
        try:
            if key is None:
                return await rt.bureau.pre_settle(
                    ec_token=token, visit_id=visit.encounter.id, claim=visit.claim, now=now
                )
            return await rt.bureau.settle(
                key=key, ec_token=token, visit_id=visit.encounter.id, claim=visit.claim, now=now
            )
        except BureauRefused as exc:
            if exc.reason in TOKEN_REFUSALS and attempt == 1:
                continue
            if exc.reason in TOKEN_REFUSALS:
                raise BureauUnavailable("the bureau keeps refusing the visit's token") from None
            uninsured = segments.Standing(category="", insured=False)
            rules = segments.rules_for(now.date())
            return segments.split(visit.claim.lines, uninsured, visit.claim.tier, rules)
        except (segments.UnknownCategory, segments.UnknownTier) as exc:
            raise InsuranceRulesMissing(str(exc)) from None
    raise AssertionError("unreachable")  # pragma: no cover


async def finish_settlement(
    ctx: AppContext,
    record: BureauSettlement,
    *,
    encounter: Encounter | None = None,
    hospital: Hospital | None = None,
    leased: bool = False,
) -> Bill:
    """Ask the bureau under the record's key, then book its answer once."""
    rt = ctx.runtime(PaymentsRuntime)
    now = ctx.clock.now()
    if encounter is None:
        encounter = await Encounter.get(id=record.encounter_id)
    if encounter.status != EncounterStatus.OPEN:
        return await Bill.get(encounter_id=encounter.id)
    visit = await load_visit(encounter, hospital)
    if not leased:
        # The record's next attempt doubles as a lease: the worker leaves it alone meanwhile.
        await BureauSettlement.filter(id=record.id).update(
            next_attempt_at=now + rt.config.bureau_retry_after, attempts=record.attempts + 1
        )
    try:
        split = await ask_bureau(ctx, visit, key=record.id)
    except (BureauTimeout, BureauDown) as exc:
        await BureauSettlement.filter(id=record.id).update(reason=type(exc).__name__)
        raise BureauUnavailable(
            "the insurance bureau did not answer; the settlement is recorded and will be "
            "finished by the worker",
            extra={"encounter_id": encounter.id},
        ) from None
    bill, collection = await _book(ctx, record, visit, split)
    if collection is None:
        return bill
    recorded = await collect(ctx, collection)
    if recorded.bill is not None:
        return recorded.bill
    # Read again: the collection's answer is unknown, or someone else recorded it.
    return await by_id(Bill, bill.id)


async def _book(
    ctx: AppContext, record: BureauSettlement, visit: Visit, split: segments.Segments
) -> tuple[Bill, Collection | None]:
    config = ctx.runtime(PaymentsRuntime).config
    now = ctx.clock.now()
    settled = ENCOUNTER.advance(EncounterStatus.OPEN, EncounterStatus.SETTLED)
    async with in_transaction():
        conn = connection()
        account = await by_id(CreditAccount, visit.encounter.account_id, lock=True)
        # The encounter's lock and its one move to settled in one statement: no row, and
        # someone else booked it first.
        rows = await conn.execute_query_dict(
            sql_for(conn, _SETTLE_ENCOUNTER_SQL, 3),
            [settled.value, visit.encounter.id, EncounterStatus.OPEN.value],
        )
        if not rows:
            return await Bill.get(encounter_id=visit.encounter.id), None
        encounter: Encounter = loaded(Encounter, rows[0])
        batch_id = _batch_of(visit.hospital, config, now)
        # Bill, lines, ledger, collection, record and events: written, never read back here.
        async with writes_together():
            bill, lines = await _create_bill(encounter, split, visit.billed, config, now, batch_id)
            collection = await _book_settlement(account, encounter, bill, split, now, batch_id)
            await write(
                _SETTLED_RECORD_SQL,
                [BureauStatus.SETTLED.value, as_json(split.to_json()), now, record.id],
            )
            events = [("encounter.settled", settlement_event(encounter, bill))]
            if bill.status == BillStatus.PAID:
                events.append(("bill.paid", bill_event(bill)))
            await emit_all(encounter.hospital_id, events, now)
        booked = Booked(encounter, account, visit.hospital, lines)
        for hook in on_settled:
            await hook(ctx, bill, booked)
    return bill, collection


_SETTLE_ENCOUNTER_SQL = (
    "UPDATE payments_encounters SET status = {} WHERE id = {} AND status = {} RETURNING *"
)
_SETTLED_RECORD_SQL = (
    "UPDATE payments_bureau_settlements SET status = {}, result = {}, resolved_at = {}, "
    "reason = NULL WHERE id = {}"
)


def _batch_of(hospital: Hospital, config: PaymentsConfig, now: datetime) -> str | None:
    """The daily batch a bill of this hospital waits for, or None (collect at once)."""
    if hospital.settlement_mode != SettlementMode.DAILY:
        return None
    return batch_id(hospital.id, local_day(now, config, hospital.batch_hour))


def local_day(now: datetime, config: PaymentsConfig, batch_hour: int) -> str:
    """The batch day a moment belongs to: a bill after the batch hour waits for tomorrow's."""
    local = now.astimezone(timezone(timedelta(hours=config.utc_offset_hours)))
    if local.hour >= batch_hour:
        local += timedelta(days=1)
    return local.date().isoformat()


def batch_id(hospital_id: str, day: str) -> str:
    return f"batch:{hospital_id}:{day}"


# Item ids grow with insertion, so the bill lists items in posting order.
_BILLED_SQL = (
    "SELECT c.id AS charge_ref, c.charge_id, c.refunded_fen, i.item_code, i.name, i.category, "
    "i.quantity, i.unit_price_fen, i.insurance_class, i.amount_fen "
    "FROM payments_charge_items i JOIN payments_charges c ON c.id = i.charge_id "
    "WHERE c.encounter_id = {} ORDER BY i.id"
)


async def _billed_items(encounter_id: str) -> list[Billed]:
    """Every item of the encounter's charges, net of refunds made before settlement."""
    conn = connection()
    rows = await conn.execute_query_dict(sql_for(conn, _BILLED_SQL, 1), [encounter_id])
    by_charge: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_charge.setdefault(row["charge_ref"], []).append(row)
    billed: list[Billed] = []
    for own in by_charge.values():
        # Refunds made before settlement come off the charge's items in proportion.
        cuts = allot(int(own[0]["refunded_fen"]), [int(r["amount_fen"]) for r in own])
        billed += [
            Billed(
                charge_ref=r["charge_ref"],
                charge_id=r["charge_id"],
                item_code=r["item_code"],
                name=r["name"],
                category=r["category"],
                quantity=int(r["quantity"]),
                unit_price_fen=int(r["unit_price_fen"]),
                insurance_class=r["insurance_class"],
                amount_fen=int(r["amount_fen"]) - cut,
            )
            for r, cut in zip(own, cuts, strict=True)
        ]
    return billed


async def _create_bill(
    encounter: Encounter,
    split: segments.Segments,
    billed: list[Billed],
    config: PaymentsConfig,
    now: datetime,
    batch: str | None,
) -> tuple[Bill, list[BillLine]]:
    owes = split.cash_fen > 0
    if not owes:
        status = BillStatus.PAID
    else:
        status = BillStatus.SCHEDULED if batch else BillStatus.COLLECTING
    values: dict[str, Any] = {
        "id": new_id("bill"),
        "encounter_id": encounter.id,
        "hospital_id": encounter.hospital_id,
        "subject_id": encounter.subject_id,
        "total_fen": split.total_fen,
        "insurance_fen": split.insurance_fen,
        "self_pay_fen": split.cash_fen,
        "current_account_fen": split.current_account_fen,
        "self_segment_accumulated_fen": split.self_segment_accumulated_fen,
        "self_segment_cash_fen": split.self_segment_cash_fen,
        "fund_fen": split.fund_fen,
        "copay_accumulated_fen": split.copay_accumulated_fen,
        "copay_cash_fen": split.copay_cash_fen,
        "self_paid_items_fen": split.self_paid_items_fen,
        "rule_version": split.rule_version,
        "bureau_settlement_id": settlement_key(encounter.id),
        "batch_id": batch if owes else None,
        "refunded_insurance_fen": 0,
        "refunded_self_pay_fen": 0,
        "collected_fen": 0,
        "paid_out_fen": 0,
        "status": status.value,
        "retries": 0,
        "next_retry_at": None,
        "due_at": now + config.overdue_after,
        "overdue_at": None,
        "paid_at": None if owes else now,
        "created_at": now,
    }
    bill = await inserted(Bill, values)
    lines = [
        BillLine(
            bill_id=bill.id,
            charge_ref=b.charge_ref,
            hospital_charge_id=b.charge_id,
            position=n,
            item_code=b.item_code,
            name=b.name,
            category=b.category,
            quantity=b.quantity,
            unit_price_fen=b.unit_price_fen,
            insurance_class=b.insurance_class,
            amount_fen=b.amount_fen,
            insurance_fen=share.insurance_fen,
            self_pay_fen=share.self_pay_fen,
        )
        for n, (b, share) in enumerate(zip(billed, split.lines, strict=True))
    ]
    await insert_rows(
        connection(),
        "payments_bill_lines",
        _LINE_COLUMNS,
        [tuple(getattr(line, c) for c in _LINE_COLUMNS) for line in lines],
    )
    return bill, lines


_LINE_COLUMNS = (
    "bill_id",
    "charge_ref",
    "hospital_charge_id",
    "position",
    *ITEM_FIELDS,
    "insurance_fen",
    "self_pay_fen",
)


async def _book_settlement(
    account: CreditAccount,
    encounter: Encounter,
    bill: Bill,
    split: segments.Segments,
    now: datetime,
    batch: str | None,
) -> Collection | None:
    """Post the settlement transfer (one account per payer); the keyed collection of the
    cash part, unless there is none or the daily batch collects it."""
    await post_transfer(
        ledger.settlement(
            f"settlement:{encounter.id}",
            subject_id=encounter.subject_id,
            hospital_id=encounter.hospital_id,
            insurance_fen=split.insurance_fen,
            self_pay_fen=split.cash_fen,
            current_account_fen=split.current_account_fen,
            accumulated_account_fen=split.accumulated_fen,
        ),
        hospital_id=encounter.hospital_id,
        now=now,
        fresh=True,  # the encounter was still open under its lock
    )
    if bill.self_pay_fen <= 0 or batch is not None:
        return None
    return await new_collection(
        bill,
        CollectionKind.COLLECT,
        CollectionTrigger.SETTLEMENT,
        amount_fen=bill.self_pay_fen,
        payment_method=account.payment_method,
        now=now,
    )


@dataclass(frozen=True)
class Quote:
    """The split the bureau would settle now, per line, and what the patient pays."""

    visit: Visit
    split: segments.Segments
    category: str | None


async def quote_encounter(ctx: AppContext, principal: Principal, encounter_id: str) -> Quote:
    """The hospital (its own encounter) or the patient (their own) asks what closing now
    would settle; a closed or closing encounter answers 409 encounter_closed."""
    if principal.is_resident:
        subject_id = await subject_for_request(principal, None)
        encounter = await Encounter.get_or_none(id=encounter_id, subject_id=subject_id)
        if encounter is None:
            raise NotFound("no such encounter")
    else:
        encounter = await find_encounter(hospital_of(principal), encounter_id)
    if encounter.status != EncounterStatus.OPEN or encounter.closed_at is not None:
        raise EncounterClosed("the encounter is closed; its bill says what was settled")
    visit = await load_visit(encounter)
    try:
        split = await ask_bureau(ctx, visit)
        token = await visit_token(ctx, encounter)
        standing = await ctx.runtime(PaymentsRuntime).bureau.standing(
            ec_token=token, visit_id=encounter.id, now=ctx.clock.now()
        )
    except (BureauTimeout, BureauDown):
        raise BureauUnavailable("the insurance bureau did not answer; ask again") from None
    return Quote(visit, split, standing.category if standing.insured else None)
