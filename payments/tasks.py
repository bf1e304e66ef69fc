"""The payments worker's jobs: auto-closing stale encounters, finishing bureau settlements,
daily batches, resuming and retrying collections, marking bills overdue, delivering
webhooks (registered in `wiring.py`).

Each job handles at most 200 rows per run and is safe to run in several processes at once:
every change re-reads its row under a lock, and provider calls reuse the collection's key.
"""

from __future__ import annotations

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.context import AppContext
from payments import batches, webhooks
from payments.collection import claim_collection, run_collection, start_collection
from payments.config import PaymentsRuntime
from payments.credit import refresh_account_status
from payments.errors import BureauUnavailable, InsuranceRulesMissing, PaymentInProgress
from payments.models import Bill, BureauSettlement, Collection, Encounter
from payments.settlement import finish_settlement, settle_encounter
from payments.states import (
    BILL,
    BillStatus,
    BureauStatus,
    ClosedBy,
    CollectionStatus,
    CollectionTrigger,
    EncounterStatus,
)
from payments.store import bill_event, emit


async def auto_close_stale(ctx: AppContext) -> int:
    """Settle encounters left open past `SUISHEN_ENCOUNTER_AUTO_CLOSE_HOURS`."""
    cutoff = ctx.clock.now() - ctx.runtime(PaymentsRuntime).config.auto_close_after
    stale = await Encounter.filter(status=EncounterStatus.OPEN, opened_at__lte=cutoff).limit(200)
    for encounter in stale:
        try:
            await settle_encounter(
                ctx,
                hospital_id=encounter.hospital_id,
                encounter_id=encounter.id,
                closed_by=ClosedBy.AUTO,
            )
        except (BureauUnavailable, InsuranceRulesMissing):
            continue  # recorded as pending: the bureau job finishes it
    return len(stale)


async def finish_bureau_settlements(ctx: AppContext) -> int:
    """Settlements the bureau did not answer (timeout, down) or a crash interrupted between
    the bureau and the booking: ask again under the same key and book the answer once."""
    now = ctx.clock.now()
    due = await BureauSettlement.filter(
        status=BureauStatus.PENDING, next_attempt_at__lte=now
    ).limit(200)
    finished = 0
    for record in due:
        try:
            await finish_settlement(ctx, record)
        except (BureauUnavailable, InsuranceRulesMissing):
            continue
        finished += 1
    return finished


async def run_daily_batches(ctx: AppContext) -> int:
    """Daily-batch hospitals: collect each patient's day in one charge once it is due."""
    return await batches.run_due_batches(ctx)


async def resume_collections(ctx: AppContext) -> int:
    """Finish collections a crash or a timeout left unanswered (same key: no double move).

    This is the resume path: a collection still `pending` (its bill `collecting`) whose
    lease ran out has no live caller (it crashed, or the provider did not answer and
    `SUISHEN_COLLECTION_RESUME_SECONDS` passed); the first worker to claim it asks again.
    """
    now = ctx.clock.now()
    orphans = (
        # A batch charge spans several bills: its own job (the batch) resumes it.
        await Collection.filter(status=CollectionStatus.PENDING)
        .exclude(trigger=CollectionTrigger.BATCH)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .limit(200)
    )
    resumed = 0
    for collection in orphans:
        if await claim_collection(collection.id, now):
            await run_collection(ctx, collection)
            resumed += 1
    return resumed


async def retry_collections(ctx: AppContext) -> int:
    """Collect again from `payment_pending` bills whose scheduled retry is due."""
    now = ctx.clock.now()
    due = await Bill.filter(status=BillStatus.PAYMENT_PENDING, next_retry_at__lte=now).limit(200)
    done = 0
    for bill in due:
        try:
            started = await start_collection(
                bill.id, trigger=CollectionTrigger.RETRY, payment_method=None, now=now
            )
        except PaymentInProgress:
            continue
        if isinstance(started, Collection):
            await run_collection(ctx, started)
            done += 1
    return done


async def mark_overdue(ctx: AppContext) -> int:
    """`payment_pending` bills past their due date become overdue (suspending the account)."""
    now = ctx.clock.now()
    due = await Bill.filter(status=BillStatus.PAYMENT_PENDING, due_at__lte=now).limit(200)
    marked = 0
    for candidate in due:
        async with in_transaction():
            bill = await Bill.filter(id=candidate.id).select_for_update().get()
            if bill.status != BillStatus.PAYMENT_PENDING or bill.due_at > now:
                continue
            bill.status = BILL.advance(bill.status, BillStatus.OVERDUE)
            bill.overdue_at = now
            await bill.save(update_fields=["status", "overdue_at"])
            await emit(bill.hospital_id, "bill.overdue", bill_event(bill), now)
        await refresh_account_status(ctx, bill.subject_id)
        marked += 1
    return marked


async def run_collections(ctx: AppContext) -> int:
    """Everything about collecting at once: resume orphans, run scheduled retries, mark
    overdue bills (orphans also have their own, more frequent job)."""
    return await resume_collections(ctx) + await retry_collections(ctx) + await mark_overdue(ctx)


async def deliver_webhooks(ctx: AppContext) -> int:
    """The webhooks job: deliver every due outbox event once."""
    return await webhooks.deliver_due(ctx)
