"""Collection and bills: moving money through the provider under a recorded key, booking
its answer once, and the resident's bills (reading them, paying one by hand).

Provider calls never happen inside a transaction: a `Collection` row whose id is the
provider's idempotency key is committed first, then the provider is called, then its
answer is recorded; a crash in between is resumed by the worker (`payments.tasks`).
A bill lock is never held while an account is so PostgreSQL sees no lock cycle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.db import sql_for
from app.errors import NotFound
from auth.api import Principal, subject_for_request
from payments import ledger
from payments.config import PaymentsConfig, PaymentsRuntime
from payments.credit import bind_method, refresh_account_status
from payments.errors import PaymentDeclined, PaymentInProgress, ProviderUnavailable
from payments.models import Bill, BillLine, Collection, CreditAccount
from payments.provider import ProviderResult, ProviderTimeout
from payments.states import (
    BILL,
    COLLECTION,
    BillStatus,
    CollectionKind,
    CollectionStatus,
    CollectionTrigger,
)
from payments.store import (
    bill_event,
    by_id,
    connection,
    emit,
    inserted,
    loaded,
    new_id,
    post_transfer,
    write,
    writes_together,
)

# A pending collection belongs to whoever last leased it; the holder renews the lease while
# it waits for the provider. A crashed holder stops renewing, so the worker's resume job
# (every few seconds) takes it over within LEASE, never two minutes later.
LEASE = timedelta(seconds=6)
RENEW_EVERY = 2.0  # seconds


async def claim_collection(collection_id: str, now: datetime) -> bool:
    """Take over a pending collection whose lease ran out (one caller wins)."""
    taken = (
        await Collection.filter(id=collection_id, status=CollectionStatus.PENDING)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .update(leased_until=now + LEASE)
    )
    return bool(taken)


async def _keep_lease(ctx: AppContext, collection_id: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY)
        await Collection.filter(id=collection_id, status=CollectionStatus.PENDING).update(
            leased_until=ctx.clock.now() + LEASE
        )


@dataclass(frozen=True)
class Recorded:
    """A collection after its answer was recorded, and its bill as this recording left it
    (None when the answer is still unknown, or someone else recorded it first)."""

    collection: Collection
    bill: Bill | None = None


async def run_collection(ctx: AppContext, collection: Collection) -> Collection:
    """Call the provider under the collection's key and record the answer. The caller holds
    the collection's lease (it created or claimed it); it is renewed while the call lasts.

    Timeouts are retried (same key, so at most one movement of money) up to the configured
    attempts; still unanswered, the collection is left to the worker, which asks again
    after `SUISHEN_COLLECTION_RESUME_SECONDS`.
    """
    return (await collect(ctx, collection)).collection


async def collect(ctx: AppContext, collection: Collection) -> Recorded:
    """`run_collection`, answering the bill too (settlement reports it without reading it
    again)."""
    rt = ctx.runtime(PaymentsRuntime)
    keeper = asyncio.ensure_future(_keep_lease(ctx, collection.id))
    try:
        result = await ask_provider(ctx, collection)
    finally:
        keeper.cancel()
    if result is None:
        await Collection.filter(id=collection.id, status=CollectionStatus.PENDING).update(
            leased_until=ctx.clock.now() + rt.config.resume_after
        )
        return Recorded(collection)
    return await record_collection(
        ctx, collection.id, result.succeeded, result.reason, bill_id=collection.bill_id
    )


async def ask_provider(ctx: AppContext, collection: Collection) -> ProviderResult | None:
    rt = ctx.runtime(PaymentsRuntime)
    result: ProviderResult | None = None
    for _ in range(rt.config.provider_attempts):
        try:
            call = (
                rt.provider.collect
                if collection.kind == CollectionKind.COLLECT
                else rt.provider.payout
            )
            result = await call(
                key=collection.id,
                payment_method=collection.payment_method,
                amount_fen=collection.amount_fen,
                now=ctx.clock.now(),
            )
            break
        except ProviderTimeout:
            continue
    return result


async def record_collection(
    ctx: AppContext,
    collection_id: str,
    succeeded: bool,
    reason: str | None,
    *,
    bill_id: str | None = None,
) -> Recorded:
    """Book the provider's answer once: whoever records first wins, later callers see it.
    `bill_id` (a collection's bill never changes) spares reading the collection twice."""
    config = ctx.runtime(PaymentsRuntime).config
    now = ctx.clock.now()
    outcome = CollectionStatus.SUCCEEDED if succeeded else CollectionStatus.DECLINED
    outcome = COLLECTION.advance(CollectionStatus.PENDING, outcome)
    async with in_transaction():
        conn = connection()
        if bill_id is None:
            bill_id = (await Collection.get(id=collection_id)).bill_id
        # The bill's lock first, then the collection under it (the lock order).
        bill = await by_id(Bill, bill_id, lock=True)
        # Recorded once: only a pending collection moves, whoever records first.
        rows = await conn.execute_query_dict(
            sql_for(conn, _RESOLVE_SQL, 5),
            [outcome.value, reason, now, collection_id, CollectionStatus.PENDING.value],
        )
        if not rows:
            return Recorded(await Collection.get(id=collection_id))
        collection: Collection = loaded(Collection, rows[0])
        if collection.kind == CollectionKind.PAYOUT:
            if succeeded:
                await _book_payout(bill, collection, now)
            return Recorded(collection, bill)
        was_overdue = bill.overdue_at is not None
        async with writes_together():
            if succeeded:
                await _book_collected(bill, collection, now)
            else:
                after_decline(bill, collection, config, now)
            await write(
                _COLLECTED_SQL,
                [bill.collected_fen, str(bill.status), bill.paid_at, bill.next_retry_at, bill.id],
            )
    if succeeded and was_overdue:
        await refresh_account_status(ctx, bill.subject_id)
    return Recorded(collection, bill)


_RESOLVE_SQL = (
    "UPDATE payments_collections SET status = {}, reason = {}, resolved_at = {} "
    "WHERE id = {} AND status = {} RETURNING *"
)
_COLLECTED_SQL = (
    "UPDATE payments_bills SET collected_fen = {}, status = {}, paid_at = {}, "
    "next_retry_at = {} WHERE id = {}"
)


async def _book_payout(bill: Bill, collection: Collection, now: datetime) -> None:
    bill.paid_out_fen += collection.amount_fen
    await bill.save(update_fields=["paid_out_fen"])
    await post_transfer(
        ledger.payout(
            f"payout:{collection.id}", subject_id=bill.subject_id, amount_fen=collection.amount_fen
        ),
        hospital_id=bill.hospital_id,
        now=now,
    )


async def _book_collected(bill: Bill, collection: Collection, now: datetime) -> None:
    bill.collected_fen += collection.amount_fen
    # Booked once: the collection was still pending under the bill lock.
    await post_transfer(
        ledger.collection(
            f"collection:{collection.id}",
            subject_id=bill.subject_id,
            amount_fen=collection.amount_fen,
        ),
        hospital_id=bill.hospital_id,
        now=now,
        fresh=True,
    )
    bill.status = BILL.advance(bill.status, BillStatus.PAID)
    bill.paid_at = now
    bill.next_retry_at = None
    await emit(bill.hospital_id, "bill.paid", bill_event(bill), now)


def after_decline(
    bill: Bill, collection: Collection, config: PaymentsConfig, now: datetime
) -> None:
    """Back to owing; settlement and retry declines schedule the next retry, if any is left."""
    back = BillStatus.OVERDUE if bill.overdue_at is not None else BillStatus.PAYMENT_PENDING
    bill.status = BILL.advance(bill.status, back)
    schedule = config.retry_schedule
    scheduled = (CollectionTrigger.SETTLEMENT, CollectionTrigger.RETRY)
    if collection.trigger in scheduled and bill.retries < len(schedule):
        bill.next_retry_at = now + schedule[bill.retries]
    elif collection.trigger != CollectionTrigger.MANUAL:
        bill.next_retry_at = None


async def new_collection(
    bill: Bill,
    kind: CollectionKind,
    trigger: CollectionTrigger,
    *,
    amount_fen: int,
    payment_method: str,
    now: datetime,
) -> Collection:
    """A pending collection (or payout) of the bill; its id is the provider's key."""
    values: dict[str, Any] = {
        "id": new_id("col" if kind == CollectionKind.COLLECT else "pay"),
        "bill_id": bill.id,
        "kind": kind.value,
        "trigger": trigger.value,
        "amount_fen": amount_fen,
        "payment_method": payment_method,
        "status": CollectionStatus.PENDING.value,
        "reason": None,
        "created_at": now,
        "resolved_at": None,
        "leased_until": now + LEASE,  # the creator calls the provider next
    }
    return await inserted(Collection, values)


async def start_collection(
    bill_id: str, *, trigger: CollectionTrigger, payment_method: str | None, now: datetime
) -> Collection | Bill:
    """Move a bill to `collecting` with a new keyed collection; the bill if nothing to do."""
    async with in_transaction():
        bill = await Bill.filter(id=bill_id).select_for_update().get()
        if bill.status == BillStatus.COLLECTING:
            raise PaymentInProgress("a payment for this bill is in flight; try again shortly")
        if bill.status == BillStatus.PAID or bill.outstanding_fen == 0:
            return bill
        if trigger == CollectionTrigger.RETRY:
            if (
                bill.status != BillStatus.PAYMENT_PENDING
                or bill.next_retry_at is None
                or bill.next_retry_at > now
            ):
                return bill
            bill.retries += 1
        account = await CreditAccount.get(subject_id=bill.subject_id)
        collection = await new_collection(
            bill,
            CollectionKind.COLLECT,
            trigger,
            amount_fen=bill.outstanding_fen,
            payment_method=payment_method or account.payment_method,
            now=now,
        )
        bill.status = BILL.advance(bill.status, BillStatus.COLLECTING)
        bill.next_retry_at = None if trigger == CollectionTrigger.RETRY else bill.next_retry_at
        await bill.save(update_fields=["status", "retries", "next_retry_at"])
        return collection


@dataclass(frozen=True)
class BillView:
    bill: Bill
    lines: list[BillLine]


async def _own_bill(subject_id: str, bill_id: str) -> Bill:
    # Another resident's bill answers 404: its existence must not leak.
    bill = await Bill.get_or_none(id=bill_id, subject_id=subject_id)
    if bill is None:
        raise NotFound("no such bill")
    return bill


async def _view(subject_id: str, bill_id: str) -> BillView:
    bill = await _own_bill(subject_id, bill_id)
    return BillView(bill, await BillLine.filter(bill_id=bill.id).order_by("position"))


async def bill_view(principal: Principal, bill_id: str) -> BillView:
    """One of the resident's bills with its lines."""
    return await _view(await subject_for_request(principal, None), bill_id)


async def list_bills(principal: Principal) -> list[BillView]:
    """The resident's latest bills (up to 200), newest first, with their lines."""
    subject_id = await subject_for_request(principal, None)
    bills = await Bill.filter(subject_id=subject_id).order_by("-created_at").limit(200)
    lines = await BillLine.filter(bill_id__in=[b.id for b in bills]).order_by("position")
    by_bill: dict[str, list[BillLine]] = {}
    for line in lines:
        by_bill.setdefault(line.bill_id, []).append(line)
    return [BillView(b, by_bill.get(b.id, [])) for b in bills]


async def pay_bill(
    ctx: AppContext, principal: Principal, bill_id: str, *, payment_method: str | None
) -> BillView:
    """The resident pays a pending or overdue bill by hand (optionally with another method)."""
    subject_id = await subject_for_request(principal, None)
    await _own_bill(subject_id, bill_id)
    if payment_method is not None:
        await bind_method(ctx.runtime(PaymentsRuntime).provider, payment_method)
    started = await start_collection(
        bill_id,
        trigger=CollectionTrigger.MANUAL,
        payment_method=payment_method,
        now=ctx.clock.now(),
    )
    if isinstance(started, Bill):
        return await _view(subject_id, bill_id)
    collection = await run_collection(ctx, started)
    if collection.status == CollectionStatus.PENDING:
        raise ProviderUnavailable(
            "the payment provider did not answer; the payment will be completed automatically"
        )
    if collection.status == CollectionStatus.DECLINED:
        raise PaymentDeclined(
            f"the payment was declined: {collection.reason}", extra={"reason": collection.reason}
        )
    return await _view(subject_id, bill_id)
