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

from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import NotFound
from auth.api import Principal, subject_for_request
from payments import ledger, segments
from payments.bureau import BureauDown, BureauRefused, BureauTimeout, Claim
from payments.collection import new_collection, run_collection
from payments.config import PaymentsConfig, PaymentsRuntime
from payments.encounters import find_encounter, visit_token
from payments.errors import BureauUnavailable, EncounterClosed, InsuranceRulesMissing
from payments.hospitals import hospital_of
from payments.insurance import allot
from payments.models import (
    Bill,
    BillLine,
    BureauSettlement,
    Charge,
    ChargeItem,
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
from payments.store import bill_event, emit, new_id, post_transfer, settlement_event

# A charge item as billed: its charge, the item, and its amount net of refunds before settlement.
Billed = tuple[Charge, ChargeItem, int]


@dataclass(frozen=True)
class Booked:
    """What the booking read and locked, handed to the hooks so they read none of it again."""

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
    begun = await _begin(hospital_id, encounter_id, closed_by, now, lease)
    if begun is None:
        return await Bill.get(encounter_id=encounter_id)
    record, encounter, fresh = begun
    return await finish_settlement(ctx, record, encounter=encounter, leased=fresh)


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
        lines = [segments.Line(amount, item.insurance_class) for _, item, amount in self.billed]  # type: ignore[arg-type]
        return Claim(lines=lines, tier=self.hospital.tier)


async def load_visit(encounter: Encounter) -> Visit:
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
    leased: bool = False,
) -> Bill:
    """Ask the bureau under the record's key, then book its answer once."""
    rt = ctx.runtime(PaymentsRuntime)
    now = ctx.clock.now()
    if encounter is None:
        encounter = await Encounter.get(id=record.encounter_id)
    if encounter.status != EncounterStatus.OPEN:
        return await Bill.get(encounter_id=encounter.id)
    visit = await load_visit(encounter)
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
    if collection is not None:
        await run_collection(ctx, collection)
    return await Bill.get(id=bill.id)


async def _book(
    ctx: AppContext, record: BureauSettlement, visit: Visit, split: segments.Segments
) -> tuple[Bill, Collection | None]:
    config = ctx.runtime(PaymentsRuntime).config
    now = ctx.clock.now()
    async with in_transaction():
        account = (
            await CreditAccount.filter(id=visit.encounter.account_id).select_for_update().get()
        )
        encounter = await Encounter.filter(id=visit.encounter.id).select_for_update().get()
        if encounter.status != EncounterStatus.OPEN:
            return await Bill.get(encounter_id=encounter.id), None
        batch_id = _batch_of(visit.hospital, config, now)
        bill, lines = await _create_bill(encounter, split, visit.billed, config, now, batch_id)
        collection = await _book_settlement(account, encounter, bill, split, now, batch_id)
        encounter.status = ENCOUNTER.advance(encounter.status, EncounterStatus.SETTLED)
        await encounter.save(update_fields=["status"])
        await BureauSettlement.filter(id=record.id).update(
            status=BureauStatus.SETTLED, result=split.to_json(), resolved_at=now, reason=None
        )
        await emit(
            encounter.hospital_id, "encounter.settled", settlement_event(encounter, bill), now
        )
        if bill.status == BillStatus.PAID:
            await emit(encounter.hospital_id, "bill.paid", bill_event(bill), now)
        booked = Booked(encounter, account, visit.hospital, lines)
        for hook in on_settled:
            await hook(ctx, bill, booked)
    return bill, collection


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


async def _billed_items(encounter_id: str) -> list[Billed]:
    """Every item of the encounter's charges, net of refunds made before settlement."""
    # One query; item ids grow with insertion, so the bill lists items in posting order.
    items = (
        await ChargeItem.filter(charge__encounter_id=encounter_id)
        .select_related("charge")
        .order_by("id")
    )
    charges = {i.charge_id: i.charge for i in items}
    by_charge: dict[str, list[ChargeItem]] = {}
    for item in items:
        by_charge.setdefault(item.charge_id, []).append(item)
    billed: list[Billed] = []
    for charge_key, own in by_charge.items():
        charge = charges[charge_key]
        # Refunds made before settlement come off the charge's items in proportion.
        cuts = allot(charge.refunded_fen, [i.amount_fen for i in own])
        billed += [(charge, i, i.amount_fen - cut) for i, cut in zip(own, cuts, strict=True)]
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
    bill = await Bill.create(
        id=new_id("bill"),
        encounter_id=encounter.id,
        hospital_id=encounter.hospital_id,
        subject_id=encounter.subject_id,
        total_fen=split.total_fen,
        insurance_fen=split.insurance_fen,
        self_pay_fen=split.cash_fen,
        current_account_fen=split.current_account_fen,
        self_segment_accumulated_fen=split.self_segment_accumulated_fen,
        self_segment_cash_fen=split.self_segment_cash_fen,
        fund_fen=split.fund_fen,
        copay_accumulated_fen=split.copay_accumulated_fen,
        copay_cash_fen=split.copay_cash_fen,
        self_paid_items_fen=split.self_paid_items_fen,
        rule_version=split.rule_version,
        bureau_settlement_id=settlement_key(encounter.id),
        batch_id=batch if owes else None,
        status=status,
        paid_at=None if owes else now,
        due_at=now + config.overdue_after,
        created_at=now,
    )
    lines = [
        BillLine(
            bill_id=bill.id,
            charge_ref=charge.id,
            hospital_charge_id=charge.charge_id,
            position=n,
            item_code=item.item_code,
            name=item.name,
            category=item.category,
            quantity=item.quantity,
            unit_price_fen=item.unit_price_fen,
            insurance_class=item.insurance_class,
            amount_fen=amount,
            insurance_fen=share.insurance_fen,
            self_pay_fen=share.self_pay_fen,
        )
        for n, ((charge, item, amount), share) in enumerate(zip(billed, split.lines, strict=True))
    ]
    await BillLine.bulk_create(lines)
    return bill, lines


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
