"""The payments domain's operations: hospitals, credit, encounters, charges, settlement,
collection, bills and refunds. Plain async functions; no HTTP.

Locks are always taken in one order, account -> encounter -> charge -> bill, and a bill
lock is never held while an account is locked, so PostgreSQL never sees a lock cycle.
Provider calls never happen inside a transaction: state is committed first (a
`Collection` row whose id is the provider's idempotency key), then the provider is
called, then its answer is recorded; a crash in between is resumed by the worker.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import IdempotencyKeyReused, NotFound
from app.idempotency import canonical_hash
from payments import ledger
from payments.config import PaymentsConfig
from payments.errors import (
    AlreadyEnrolled,
    CodeRejected,
    CreditLimitExceeded,
    CreditUnavailable,
    EncounterClosed,
    NotEnrolled,
    PaymentDeclined,
    PaymentInProgress,
    PaymentMethodInvalid,
    ProviderUnavailable,
    RefundExceedsCharge,
)
from payments.insurance import InsuranceClass, InsuranceProfile, Line, allot, split_encounter
from payments.insurance import proportional_part as insurance_part
from payments.models import (
    Bill,
    BillLine,
    Charge,
    ChargeItem,
    Collection,
    CreditAccount,
    Encounter,
    Hospital,
    LedgerEntry,
    LedgerTransfer,
    OutboxEvent,
    Refund,
)
from payments.provider import PaymentMethodRejected, PaymentProvider, ProviderTimeout

UNPAID = ("collecting", "payment_pending", "overdue")


class InjectedCrash(RuntimeError):
    """Raised at a fault-injection point, standing in for the process dying there."""


@dataclass
class PaymentsRuntime:
    """The domain's long-lived objects, kept in `ctx.extensions["payments"]`.

    `faults` names injection points that crash on purpose (tests of recovery only).
    """

    config: PaymentsConfig
    provider: PaymentProvider
    faults: set[str] = field(default_factory=set)


def runtime(ctx: AppContext) -> PaymentsRuntime:
    found: PaymentsRuntime = ctx.extensions["payments"]
    return found


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


# -- ledger and outbox (always inside the caller's transaction) ----------------------


async def post_transfer(transfer: ledger.Transfer, *, hospital_id: str, now: datetime) -> bool:
    """Store a balanced transfer once; False when its key was posted before.

    Callers hold the lock of the object the key belongs to, so the existence check does
    not race; the unique key is the last line of defence.
    """
    if not transfer.postings or await LedgerTransfer.filter(key=transfer.key).exists():
        return False
    row = await LedgerTransfer.create(
        key=transfer.key, kind=transfer.kind, hospital_id=hospital_id, created_at=now
    )
    await LedgerEntry.bulk_create(
        [
            LedgerEntry(
                transfer_id=row.id, account=p.account, amount_fen=p.amount_fen, created_at=now
            )
            for p in transfer.postings
        ]
    )
    return True


async def emit(hospital_id: str, event_type: str, data: dict[str, Any], now: datetime) -> None:
    """Write a webhook event to the outbox (inside the transaction of the change)."""
    event_id = new_id("evt")
    await OutboxEvent.create(
        id=event_id,
        hospital_id=hospital_id,
        type=event_type,
        payload={"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data},
        next_attempt_at=now,
        created_at=now,
    )


async def account_balances() -> dict[str, int]:
    """Each account's balance, summed by the database (the invariant tests compare it
    with the entries summed one by one)."""
    rows = (
        await LedgerEntry.annotate(balance=Sum("amount_fen"))
        .group_by("account")
        .values_list("account", "balance")
    )
    return {str(account): int(balance) for account, balance in rows}


async def ledger_rows() -> list[ledger.EntryRow]:
    rows = await LedgerEntry.all().values_list("transfer__key", "account", "amount_fen")
    return [ledger.EntryRow(k, a, v) for k, a, v in rows]


# -- hospitals ----------------------------------------------------------------------


async def create_hospital(ctx: AppContext, name: str) -> Hospital:
    return await Hospital.create(id=new_id("hosp"), name=name, created_at=ctx.clock.now())


async def get_hospital(hospital_id: str) -> Hospital:
    hospital = await Hospital.get_or_none(id=hospital_id)
    if hospital is None:
        raise NotFound("no such hospital")
    return hospital


# -- credit -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditUse:
    holds_fen: int
    unpaid_fen: int
    overdue: bool


async def credit_use(account: CreditAccount) -> CreditUse:
    holds = cast(
        list[int],
        await Encounter.filter(account_id=account.id, status="open").values_list(
            "hold_fen", flat=True
        ),
    )
    bills = await Bill.filter(subject_id=account.subject_id, status__in=UNPAID)
    return CreditUse(
        holds_fen=sum(holds),
        unpaid_fen=sum(b.outstanding_fen for b in bills),
        overdue=any(b.status == "overdue" for b in bills),
    )


def available_fen(account: CreditAccount, use: CreditUse) -> int:
    room: int = account.limit_fen - use.holds_fen - use.unpaid_fen
    return max(0, room)


async def enroll(
    ctx: AppContext,
    subject_id: str,
    payment_method: str,
    *,
    insured: bool = True,
    deductible_met_fen: int = 0,
) -> CreditAccount:
    rt = runtime(ctx)
    try:
        await rt.provider.bind(payment_method)
    except PaymentMethodRejected as exc:
        raise PaymentMethodInvalid(str(exc)) from None
    now = ctx.clock.now()
    try:
        return await CreditAccount.create(
            id=new_id("cred"),
            subject_id=subject_id,
            limit_fen=rt.config.credit_limit_fen,
            payment_method=payment_method,
            insured=insured,
            scheme=rt.config.scheme.name,
            insurance_year=now.year,
            deductible_met_fen=deductible_met_fen,
            created_at=now,
            updated_at=now,
        )
    except IntegrityError:
        raise AlreadyEnrolled("this resident already has a credit account") from None


@dataclass(frozen=True)
class CreditSummary:
    account: CreditAccount
    available_fen: int
    holds_fen: int
    unpaid_fen: int
    open_encounters: list[Encounter]
    unpaid_bills: list[Bill]


async def credit_summary(subject_id: str) -> CreditSummary:
    account = await CreditAccount.get_or_none(subject_id=subject_id)
    if account is None:
        raise NotEnrolled("enrol first: POST /v1/credit/enroll")
    use = await credit_use(account)
    return CreditSummary(
        account=account,
        available_fen=available_fen(account, use),
        holds_fen=use.holds_fen,
        unpaid_fen=use.unpaid_fen,
        open_encounters=await Encounter.filter(account_id=account.id, status="open").order_by(
            "opened_at"
        ),
        unpaid_bills=await Bill.filter(subject_id=subject_id, status__in=UNPAID).order_by(
            "created_at"
        ),
    )


async def _refresh_account_status(ctx: AppContext, subject_id: str) -> None:
    """Suspend while any bill is overdue, reactivate once none is (under the account lock,
    after the bill change committed, so the two never race into a wrong status)."""
    async with in_transaction():
        account = await CreditAccount.filter(subject_id=subject_id).select_for_update().first()
        if account is None:
            return
        overdue = await Bill.filter(subject_id=subject_id, status="overdue").exists()
        status = "suspended" if overdue else "active"
        if account.status != status:
            account.status = status
            account.updated_at = ctx.clock.now()
            await account.save(update_fields=["status", "updated_at"])


# -- encounters and charges -------------------------------------------------------------


@dataclass(frozen=True)
class OpenedEncounter:
    """A new encounter and what the hospital may know of its patient (nothing in clear)."""

    encounter: Encounter
    masked_name: str | None
    age_group: str | None


async def open_encounter(
    ctx: AppContext, *, hospital_id: str, verifier_id: str, code: str, department: str
) -> OpenedEncounter:
    from codes import service as codes_service  # type: ignore[attr-defined, unused-ignore]

    verification = await codes_service.verify_code(ctx, code, verifier_id=verifier_id)
    if not verification.valid or verification.subject_id is None:
        raise CodeRejected(
            f"the code did not verify: {verification.reason}",
            extra={"reason": verification.reason},
        )
    subject_id = verification.subject_id
    known = await CreditAccount.get_or_none(subject_id=subject_id)
    if known is None:
        raise CreditUnavailable(
            "the patient has not enrolled for credit", extra={"reason": "not_enrolled"}
        )
    rt = runtime(ctx)
    now = ctx.clock.now()
    async with in_transaction():
        account = await CreditAccount.filter(id=known.id).select_for_update().get()
        use = await credit_use(account)
        if account.status != "active" or use.overdue:
            raise CreditUnavailable(
                "the credit account is suspended", extra={"reason": "suspended"}
            )
        available = available_fen(account, use)
        if available <= 0:
            raise CreditUnavailable("no credit left", extra={"reason": "no_credit_left"})
        encounter = await Encounter.create(
            id=new_id("enc"),
            hospital_id=hospital_id,
            subject_id=subject_id,
            account_id=account.id,
            department=department,
            hold_fen=min(rt.config.initial_hold_fen, available),
            opened_at=now,
        )
    return OpenedEncounter(encounter, verification.masked_name, verification.age_group)


async def get_encounter(hospital_id: str, encounter_id: str) -> Encounter:
    # Another hospital's encounter answers 404: its existence must not leak.
    encounter = await Encounter.get_or_none(id=encounter_id, hospital_id=hospital_id)
    if encounter is None:
        raise NotFound("no such encounter")
    return encounter


@dataclass(frozen=True)
class ItemInput:
    item_code: str
    name: str
    category: str
    quantity: int
    unit_price_fen: int
    insurance_class: InsuranceClass

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(frozen=True)
class ChargeResult:
    charge: Charge
    items: list[ChargeItem]
    encounter: Encounter
    created: bool


async def post_charge(
    ctx: AppContext,
    *,
    hospital_id: str,
    encounter_id: str,
    charge_id: str,
    items: Sequence[ItemInput],
) -> ChargeResult:
    """Add a charge, extending the hold while credit remains; idempotent by `charge_id`."""
    found = await get_encounter(hospital_id, encounter_id)
    fingerprint = canonical_hash([vars(i) for i in items])
    amount = sum(i.amount_fen for i in items)
    now = ctx.clock.now()
    async with in_transaction():
        account = await CreditAccount.filter(id=found.account_id).select_for_update().get()
        encounter = await Encounter.filter(id=encounter_id).select_for_update().get()
        existing = await Charge.get_or_none(encounter_id=encounter_id, charge_id=charge_id)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused("this charge_id was used with other items")
            stored = await ChargeItem.filter(charge_id=existing.id).order_by("position")
            return ChargeResult(existing, stored, encounter, created=False)
        if encounter.status != "open":
            raise EncounterClosed("the encounter is closed; post no more charges")
        needed = encounter.charged_fen + amount - encounter.hold_fen
        if needed > 0:
            use = await credit_use(account)
            available = 0 if account.status != "active" else available_fen(account, use)
            if needed > available:
                raise CreditLimitExceeded(
                    "the charge needs more credit than the patient has left",
                    extra={"available_fen": available, "needed_fen": needed},
                )
            encounter.hold_fen += needed
        encounter.charged_fen += amount
        await encounter.save(update_fields=["hold_fen", "charged_fen"])
        charge = await Charge.create(
            id=new_id("chg"),
            encounter_id=encounter_id,
            charge_id=charge_id,
            amount_fen=amount,
            request_hash=fingerprint,
            created_at=now,
        )
        rows = [
            ChargeItem(
                charge_id=charge.id,
                position=n,
                item_code=i.item_code,
                name=i.name,
                category=i.category,
                quantity=i.quantity,
                unit_price_fen=i.unit_price_fen,
                insurance_class=i.insurance_class,
                amount_fen=i.amount_fen,
            )
            for n, i in enumerate(items)
        ]
        await ChargeItem.bulk_create(rows)
        return ChargeResult(charge, rows, encounter, created=True)


# -- settlement -----------------------------------------------------------------------


def insurance_profile(
    account: CreditAccount, config: PaymentsConfig, now: datetime
) -> InsuranceProfile:
    # The deductible and the cap are annual: last year's figures count for nothing now.
    same_year = account.insurance_year == now.year
    return InsuranceProfile(
        insured=account.insured,
        scheme=config.scheme,
        deductible_met_fen=account.deductible_met_fen if same_year else 0,
        paid_this_year_fen=account.insurance_paid_fen if same_year else 0,
    )


async def close_encounter(
    ctx: AppContext, *, hospital_id: str, encounter_id: str, closed_by: str = "hospital"
) -> Bill:
    """Settle the encounter once: split, bill, ledger, release the hold, collect self-pay.

    Closing a settled encounter returns its bill, so concurrent or repeated closes settle once.
    """
    found = await get_encounter(hospital_id, encounter_id)
    if found.status != "open":
        return await Bill.get(encounter_id=encounter_id)
    rt = runtime(ctx)
    now = ctx.clock.now()
    collection: Collection | None = None
    async with in_transaction():
        account = await CreditAccount.filter(id=found.account_id).select_for_update().get()
        encounter = await Encounter.filter(id=encounter_id).select_for_update().get()
        if encounter.status != "open":
            return await Bill.get(encounter_id=encounter_id)
        charges = {c.id: c for c in await Charge.filter(encounter_id=encounter_id)}
        # Item ids grow with insertion, so the bill lists items in the order they were posted.
        items = await ChargeItem.filter(charge_id__in=list(charges)).order_by("id")
        by_charge: dict[str, list[ChargeItem]] = {}
        for item in items:
            by_charge.setdefault(item.charge_id, []).append(item)
        billed: list[tuple[Charge, ChargeItem, int]] = []
        for charge_key, own in by_charge.items():
            charge = charges[charge_key]
            # Refunds made before settlement come off the charge's items in proportion.
            cuts = allot(charge.refunded_fen, [i.amount_fen for i in own])
            billed += [(charge, i, i.amount_fen - cut) for i, cut in zip(own, cuts, strict=True)]
        profile = insurance_profile(account, rt.config, now)
        split = split_encounter(
            [Line(amount, item.insurance_class) for _, item, amount in billed],  # type: ignore[arg-type]
            profile,
        )
        bill = await Bill.create(
            id=new_id("bill"),
            encounter_id=encounter_id,
            hospital_id=hospital_id,
            subject_id=encounter.subject_id,
            total_fen=split.total_fen,
            insurance_fen=split.insurance_fen,
            self_pay_fen=split.self_pay_fen,
            status="collecting" if split.self_pay_fen > 0 else "paid",
            paid_at=None if split.self_pay_fen > 0 else now,
            due_at=now + rt.config.overdue_after,
            created_at=now,
        )
        await BillLine.bulk_create(
            [
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
                    insurance_fen=line.insurance_fen,
                    self_pay_fen=line.self_pay_fen,
                )
                for n, ((charge, item, amount), line) in enumerate(
                    zip(billed, split.lines, strict=True)
                )
            ]
        )
        await post_transfer(
            ledger.settlement(
                f"settlement:{encounter_id}",
                subject_id=encounter.subject_id,
                hospital_id=hospital_id,
                insurance_fen=split.insurance_fen,
                self_pay_fen=split.self_pay_fen,
            ),
            hospital_id=hospital_id,
            now=now,
        )
        if split.self_pay_fen > 0:
            collection = await Collection.create(
                id=new_id("col"),
                bill_id=bill.id,
                kind="collect",
                trigger="settlement",
                amount_fen=split.self_pay_fen,
                payment_method=account.payment_method,
                status="pending",
                created_at=now,
            )
        # The profile already counts last year's figures as zero, so this also rolls the year.
        account.deductible_met_fen = profile.deductible_met_fen + split.deductible_applied_fen
        account.insurance_paid_fen = profile.paid_this_year_fen + split.insurance_fen
        account.insurance_year = now.year
        account.updated_at = now
        await account.save(
            update_fields=[
                "deductible_met_fen",
                "insurance_paid_fen",
                "insurance_year",
                "updated_at",
            ]
        )
        encounter.status = "settled"
        encounter.closed_at = now
        encounter.closed_by = closed_by
        await encounter.save(update_fields=["status", "closed_at", "closed_by"])
        await emit(hospital_id, "encounter.settled", settlement_event(encounter, bill), now)
        if collection is None:
            await emit(hospital_id, "bill.paid", bill_event(bill), now)
    if collection is not None:
        if "crash_after_booking" in rt.faults:
            raise InjectedCrash("injected crash between booking the ledger and collecting")
        await run_collection(ctx, collection)
    return await Bill.get(id=bill.id)


def settlement_event(encounter: Encounter, bill: Bill) -> dict[str, Any]:
    return {
        "encounter_id": encounter.id,
        "bill_id": bill.id,
        "department": encounter.department,
        "total_fen": bill.total_fen,
        "insurance_fen": bill.insurance_fen,
        "self_pay_fen": bill.self_pay_fen,
        "closed_by": encounter.closed_by,
    }


def bill_event(bill: Bill) -> dict[str, Any]:
    return {
        "bill_id": bill.id,
        "encounter_id": bill.encounter_id,
        "total_fen": bill.total_fen,
        "self_pay_fen": bill.self_pay_fen,
        "status": bill.status,
    }


def settlement_status(bill: Bill) -> str:
    """What the close endpoint reports: settled once nothing is owed, else payment_pending."""
    return "settled" if bill.status == "paid" else "payment_pending"


# -- collection -----------------------------------------------------------------------------


async def run_collection(ctx: AppContext, collection: Collection) -> Collection:
    """Call the provider under the collection's key and record the answer.

    Timeouts are retried (same key, so at most one movement of money) up to the configured
    attempts; still unanswered, the collection stays `pending` for the worker to resume.
    """
    rt = runtime(ctx)
    result = None
    for _ in range(rt.config.provider_attempts):
        try:
            call = rt.provider.collect if collection.kind == "collect" else rt.provider.payout
            result = await call(
                key=collection.id,
                payment_method=collection.payment_method,
                amount_fen=collection.amount_fen,
                now=ctx.clock.now(),
            )
            break
        except ProviderTimeout:
            continue
    if result is None:
        return collection
    return await record_collection(ctx, collection.id, result.succeeded, result.reason)


async def record_collection(
    ctx: AppContext, collection_id: str, succeeded: bool, reason: str | None
) -> Collection:
    """Book the provider's answer once: whoever records first wins, later callers see it."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    async with in_transaction():
        first = await Collection.get(id=collection_id)
        bill = await Bill.filter(id=first.bill_id).select_for_update().get()
        collection = await Collection.get(id=collection_id)
        if collection.status != "pending":
            return collection
        collection.status = "succeeded" if succeeded else "declined"
        collection.reason = reason
        collection.resolved_at = now
        await collection.save(update_fields=["status", "reason", "resolved_at"])
        if collection.kind == "payout":
            if succeeded:
                bill.paid_out_fen += collection.amount_fen
                await bill.save(update_fields=["paid_out_fen"])
                await post_transfer(
                    ledger.payout(
                        f"payout:{collection.id}",
                        subject_id=bill.subject_id,
                        amount_fen=collection.amount_fen,
                    ),
                    hospital_id=bill.hospital_id,
                    now=now,
                )
            return collection
        was_overdue = bill.overdue_at is not None
        if succeeded:
            bill.collected_fen += collection.amount_fen
            await post_transfer(
                ledger.collection(
                    f"collection:{collection.id}",
                    subject_id=bill.subject_id,
                    amount_fen=collection.amount_fen,
                ),
                hospital_id=bill.hospital_id,
                now=now,
            )
            bill.status = "paid"
            bill.paid_at = now
            bill.next_retry_at = None
            await emit(bill.hospital_id, "bill.paid", bill_event(bill), now)
        else:
            schedule = rt.config.retry_schedule
            bill.status = "overdue" if was_overdue else "payment_pending"
            if collection.trigger in ("settlement", "retry") and bill.retries < len(schedule):
                bill.next_retry_at = now + schedule[bill.retries]
            elif collection.trigger != "manual":
                bill.next_retry_at = None
        await bill.save(update_fields=["collected_fen", "status", "paid_at", "next_retry_at"])
    if succeeded and was_overdue:
        await _refresh_account_status(ctx, bill.subject_id)
    return collection


async def _start_collection(
    bill_id: str, *, trigger: str, payment_method: str | None, now: datetime
) -> Collection | Bill:
    """Move a bill to `collecting` with a new keyed collection; the bill if nothing to do."""
    async with in_transaction():
        bill = await Bill.filter(id=bill_id).select_for_update().get()
        if bill.status == "collecting":
            raise PaymentInProgress("a payment for this bill is in flight; try again shortly")
        if bill.status == "paid" or bill.outstanding_fen == 0:
            return bill
        if trigger == "retry":
            if (
                bill.status != "payment_pending"
                or bill.next_retry_at is None
                or bill.next_retry_at > now
            ):
                return bill
            bill.retries += 1
        account = await CreditAccount.get(subject_id=bill.subject_id)
        collection = await Collection.create(
            id=new_id("col"),
            bill_id=bill.id,
            kind="collect",
            trigger=trigger,
            amount_fen=bill.outstanding_fen,
            payment_method=payment_method or account.payment_method,
            status="pending",
            created_at=now,
        )
        bill.status = "collecting"
        bill.next_retry_at = None if trigger == "retry" else bill.next_retry_at
        await bill.save(update_fields=["status", "retries", "next_retry_at"])
        return collection


@dataclass(frozen=True)
class BillView:
    bill: Bill
    lines: list[BillLine]


async def get_bill(subject_id: str, bill_id: str) -> Bill:
    # Another resident's bill answers 404: its existence must not leak.
    bill = await Bill.get_or_none(id=bill_id, subject_id=subject_id)
    if bill is None:
        raise NotFound("no such bill")
    return bill


async def bill_view(subject_id: str, bill_id: str) -> BillView:
    bill = await get_bill(subject_id, bill_id)
    return BillView(bill, await BillLine.filter(bill_id=bill.id).order_by("position"))


async def list_bills(subject_id: str) -> list[BillView]:
    bills = await Bill.filter(subject_id=subject_id).order_by("-created_at").limit(200)
    lines = await BillLine.filter(bill_id__in=[b.id for b in bills]).order_by("position")
    by_bill: dict[str, list[BillLine]] = {}
    for line in lines:
        by_bill.setdefault(line.bill_id, []).append(line)
    return [BillView(b, by_bill.get(b.id, [])) for b in bills]


async def pay_bill(
    ctx: AppContext, *, subject_id: str, bill_id: str, payment_method: str | None
) -> BillView:
    """The resident pays a pending or overdue bill by hand (optionally with another method)."""
    await get_bill(subject_id, bill_id)
    rt = runtime(ctx)
    if payment_method is not None:
        try:
            await rt.provider.bind(payment_method)
        except PaymentMethodRejected as exc:
            raise PaymentMethodInvalid(str(exc)) from None
    started = await _start_collection(
        bill_id, trigger="manual", payment_method=payment_method, now=ctx.clock.now()
    )
    if isinstance(started, Bill):
        return await bill_view(subject_id, bill_id)
    collection = await run_collection(ctx, started)
    if collection.status == "pending":
        raise ProviderUnavailable(
            "the payment provider did not answer; the payment will be completed automatically"
        )
    if collection.status == "declined":
        raise PaymentDeclined(
            f"the payment was declined: {collection.reason}", extra={"reason": collection.reason}
        )
    return await bill_view(subject_id, bill_id)


# -- refunds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    created: bool


async def refund_charge(
    ctx: AppContext,
    *,
    hospital_id: str,
    encounter_id: str,
    refund_id: str,
    charge_id: str,
    amount_fen: int,
) -> RefundResult:
    """Refund part or all of a charge, never past what was charged (the charge row is
    locked, so concurrent refunds queue and each sees the sum of the previous ones)."""
    await get_encounter(hospital_id, encounter_id)
    fingerprint = canonical_hash({"charge_id": charge_id, "amount_fen": amount_fen})
    now = ctx.clock.now()
    payout: Collection | None = None
    async with in_transaction():
        encounter = await Encounter.filter(id=encounter_id).select_for_update().get()
        existing = await Refund.get_or_none(encounter_id=encounter_id, refund_id=refund_id)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused("this refund_id was used with another request")
            return RefundResult(existing, created=False)
        charge = (
            await Charge.filter(encounter_id=encounter_id, charge_id=charge_id)
            .select_for_update()
            .first()
        )
        if charge is None:
            raise NotFound("no such charge on this encounter")
        if charge.refunded_fen + amount_fen > charge.amount_fen:
            raise RefundExceedsCharge(
                "the refunds would exceed the charge",
                extra={"refundable_fen": charge.amount_fen - charge.refunded_fen},
            )
        insurance_fen = self_pay_fen = 0
        after = encounter.status != "open"
        if not after:
            encounter.charged_fen -= amount_fen
            await encounter.save(update_fields=["charged_fen"])
        else:
            bill = await Bill.filter(encounter_id=encounter_id).select_for_update().get()
            if bill.status == "collecting":
                raise PaymentInProgress("the bill's payment is in flight; retry the refund shortly")
            lines = await BillLine.filter(bill_id=bill.id, charge_ref=charge.id)
            billed = sum(line.amount_fen for line in lines)
            billed_insurance = sum(line.insurance_fen for line in lines)
            before = sum(
                cast(
                    list[int],
                    await Refund.filter(charge_id=charge.id, after_settlement=True).values_list(
                        "amount_fen", flat=True
                    ),
                )
            )
            insurance_fen = insurance_part(billed_insurance, billed, before, amount_fen)
            self_pay_fen = amount_fen - insurance_fen
            bill.refunded_insurance_fen += insurance_fen
            bill.refunded_self_pay_fen += self_pay_fen
            await post_transfer(
                ledger.refund(
                    f"refund:{encounter_id}:{refund_id}",
                    subject_id=bill.subject_id,
                    hospital_id=hospital_id,
                    insurance_fen=insurance_fen,
                    self_pay_fen=self_pay_fen,
                ),
                hospital_id=hospital_id,
                now=now,
            )
            overpaid = (
                bill.collected_fen
                - bill.paid_out_fen
                - (bill.self_pay_fen - bill.refunded_self_pay_fen)
            )
            pending_payouts = sum(
                cast(
                    list[int],
                    await Collection.filter(
                        bill_id=bill.id, kind="payout", status="pending"
                    ).values_list("amount_fen", flat=True),
                )
            )
            if overpaid - pending_payouts > 0:
                account = await CreditAccount.get(subject_id=bill.subject_id)
                payout = await Collection.create(
                    id=new_id("pay"),
                    bill_id=bill.id,
                    kind="payout",
                    trigger="refund",
                    amount_fen=overpaid - pending_payouts,
                    payment_method=account.payment_method,
                    status="pending",
                    created_at=now,
                )
            if bill.status in ("payment_pending", "overdue") and bill.outstanding_fen == 0:
                bill.status = "paid"
                bill.paid_at = now
                bill.next_retry_at = None
            await bill.save(
                update_fields=[
                    "refunded_insurance_fen",
                    "refunded_self_pay_fen",
                    "status",
                    "paid_at",
                    "next_retry_at",
                ]
            )
        charge.refunded_fen += amount_fen
        await charge.save(update_fields=["refunded_fen"])
        refund = await Refund.create(
            id=new_id("ref"),
            encounter_id=encounter_id,
            charge_id=charge.id,
            hospital_id=hospital_id,
            hospital_charge_id=charge_id,
            refund_id=refund_id,
            amount_fen=amount_fen,
            insurance_fen=insurance_fen,
            self_pay_fen=self_pay_fen,
            after_settlement=after,
            request_hash=fingerprint,
            created_at=now,
        )
        await emit(
            hospital_id,
            "refund.succeeded",
            {
                "refund_id": refund_id,
                "encounter_id": encounter_id,
                "charge_id": charge_id,
                "amount_fen": amount_fen,
                "insurance_fen": insurance_fen,
                "self_pay_fen": self_pay_fen,
                "after_settlement": after,
            },
            now,
        )
    if payout is not None:
        await run_collection(ctx, payout)
    if after:
        await _refresh_account_status(ctx, encounter.subject_id)
    return RefundResult(refund, created=True)


# -- background work ----------------------------------------------------------------------------


async def auto_close_stale(ctx: AppContext) -> int:
    rt = runtime(ctx)
    cutoff = ctx.clock.now() - rt.config.auto_close_after
    stale = await Encounter.filter(status="open", opened_at__lte=cutoff).limit(200)
    for encounter in stale:
        await close_encounter(
            ctx, hospital_id=encounter.hospital_id, encounter_id=encounter.id, closed_by="auto"
        )
    return len(stale)


async def resume_collections(ctx: AppContext) -> int:
    """Finish collections a crash or a timeout left unanswered (same key: no double move)."""
    rt = runtime(ctx)
    cutoff = ctx.clock.now() - rt.config.resume_after
    orphans = await Collection.filter(status="pending", created_at__lte=cutoff).limit(200)
    for collection in orphans:
        await run_collection(ctx, collection)
    return len(orphans)


async def retry_collections(ctx: AppContext) -> int:
    now = ctx.clock.now()
    due = await Bill.filter(status="payment_pending", next_retry_at__lte=now).limit(200)
    done = 0
    for bill in due:
        try:
            started = await _start_collection(
                bill.id, trigger="retry", payment_method=None, now=now
            )
        except PaymentInProgress:
            continue
        if isinstance(started, Collection):
            await run_collection(ctx, started)
            done += 1
    return done


async def mark_overdue(ctx: AppContext) -> int:
    now = ctx.clock.now()
    due = await Bill.filter(status="payment_pending", due_at__lte=now).limit(200)
    marked = 0
    for candidate in due:
        async with in_transaction():
            bill = await Bill.filter(id=candidate.id).select_for_update().get()
            if bill.status != "payment_pending" or bill.due_at > now:
                continue
            bill.status = "overdue"
            bill.overdue_at = now
            await bill.save(update_fields=["status", "overdue_at"])
            await emit(bill.hospital_id, "bill.overdue", bill_event(bill), now)
        await _refresh_account_status(ctx, bill.subject_id)
        marked += 1
    return marked


async def run_collections(ctx: AppContext) -> int:
    """The collections job: resume orphans, run scheduled retries, mark overdue bills."""
    return await resume_collections(ctx) + await retry_collections(ctx) + await mark_overdue(ctx)
