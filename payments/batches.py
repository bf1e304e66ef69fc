"""The daily batch of hospitals that settle once a day: each patient's bills of the day are
collected in one charge at the hospital's batch hour (local time).

Crash-safe by construction: a patient's charge has a key derived from the batch and the
patient (never random), its `Collection` is committed with the bills moved to `collecting`
before the provider is called, and a rerun of the batch asks the provider again under the
same key, which returns the first outcome. Nobody is charged twice.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone

from tortoise.transactions import in_transaction

from app.context import AppContext
from payments import ledger
from payments.collection import after_decline, ask_provider
from payments.config import PaymentsRuntime
from payments.models import Bill, Collection, CreditAccount, Hospital, SettlementBatch
from payments.states import (
    BILL,
    COLLECTION,
    BillStatus,
    CollectionKind,
    CollectionStatus,
    CollectionTrigger,
    SettlementMode,
)
from payments.store import bill_event, emit, post_transfer

BATCH_PREFIX = "batch:"


def batch_charge_key(batch_id: str, subject_id: str) -> str:
    """The provider's key of one patient's charge in one batch (40 characters at most)."""
    digest = hashlib.sha256(f"{batch_id}|{subject_id}".encode()).hexdigest()[:32]
    return f"bat_{digest}"


def batch_day(batch_id: str) -> date:
    return date.fromisoformat(batch_id.rsplit(":", 1)[1])


def batch_due(hospital: Hospital, day: date, now: datetime, utc_offset_hours: int) -> bool:
    """A day's batch is due from the batch hour of that local day on."""
    tz = timezone(timedelta(hours=utc_offset_hours))
    due = datetime(day.year, day.month, day.day, hospital.batch_hour, tzinfo=tz)
    return now >= due


async def run_due_batches(ctx: AppContext) -> int:
    """The batch job: every due batch with bills still scheduled or in flight."""
    rt = ctx.runtime(PaymentsRuntime)
    now = ctx.clock.now()
    waiting = (
        await Bill.filter(
            status__in=[BillStatus.SCHEDULED, BillStatus.COLLECTING], batch_id__isnull=False
        )
        .distinct()
        .values_list("batch_id", flat=True)
    )
    hospitals = {h.id: h for h in await Hospital.filter(settlement_mode=SettlementMode.DAILY)}
    done = 0
    for batch_id in sorted({str(b) for b in waiting}):
        hospital_id = batch_id.removeprefix(BATCH_PREFIX).rsplit(":", 1)[0]
        hospital = hospitals.get(hospital_id) or await Hospital.get(id=hospital_id)
        day = batch_day(batch_id)
        if batch_due(hospital, day, now, rt.config.utc_offset_hours):
            await run_batch(ctx, hospital_id, batch_id, day)
            done += 1
    return done


async def run_batch(ctx: AppContext, hospital_id: str, batch_id: str, day: date) -> SettlementBatch:
    """Collect each patient's scheduled bills of the batch in one charge; rerunnable."""
    now = ctx.clock.now()
    batch, _ = await SettlementBatch.get_or_create(
        id=batch_id,
        defaults={"hospital_id": hospital_id, "day": day, "status": "running", "created_at": now},
    )
    subjects = (
        await Bill.filter(
            batch_id=batch_id, status__in=[BillStatus.SCHEDULED, BillStatus.COLLECTING]
        )
        .distinct()
        .values_list("subject_id", flat=True)
    )
    for subject_id in sorted({str(s) for s in subjects}):
        collection = await _start_charge(batch_id, subject_id, now)
        if collection is not None:
            await _finish_charge(ctx, batch_id, collection)
    bills = await Bill.filter(batch_id=batch_id)
    charged = await Collection.filter(
        id__in=list({batch_charge_key(batch_id, b.subject_id) for b in bills}),
        status=CollectionStatus.SUCCEEDED,
    )
    batch.encounters = len(bills)
    batch.charges = len(charged)
    batch.amount_fen = sum(c.amount_fen for c in charged)
    open_left = any(b.status in (BillStatus.SCHEDULED, BillStatus.COLLECTING) for b in bills)
    batch.status = "running" if open_left else "done"
    batch.finished_at = None if open_left else ctx.clock.now()
    await batch.save()
    return batch


async def _start_charge(batch_id: str, subject_id: str, now: datetime) -> Collection | None:
    """The patient's charge: the one recorded before (a rerun), or a new one over every
    bill of theirs still scheduled, moved to `collecting` in the same transaction."""
    key = batch_charge_key(batch_id, subject_id)
    async with in_transaction():
        bills = (
            await Bill.filter(batch_id=batch_id, subject_id=subject_id)
            .select_for_update()
            .order_by("id")
        )
        existing = await Collection.get_or_none(id=key)
        if existing is not None:
            return existing if existing.status == CollectionStatus.PENDING else None
        scheduled = [b for b in bills if b.status == BillStatus.SCHEDULED]
        amount = sum(b.outstanding_fen for b in scheduled)
        if amount <= 0:
            return None
        account = await CreditAccount.get(subject_id=subject_id)
        for bill in scheduled:
            bill.status = BILL.advance(bill.status, BillStatus.COLLECTING)
            await bill.save(update_fields=["status"])
        return await Collection.create(
            id=key,
            bill_id=scheduled[0].id,  # the charge covers every bill of the batch
            kind=CollectionKind.COLLECT,
            trigger=CollectionTrigger.BATCH,
            amount_fen=amount,
            payment_method=account.payment_method,
            status=CollectionStatus.PENDING,
            created_at=now,
        )


async def _finish_charge(ctx: AppContext, batch_id: str, collection: Collection) -> None:
    result = await ask_provider(ctx, collection)
    if result is None:
        return  # unanswered: the next run of the batch asks again under the same key
    config = ctx.runtime(PaymentsRuntime).config
    now = ctx.clock.now()
    async with in_transaction():
        first = await Collection.get(id=collection.id)
        bills = (
            await Bill.filter(batch_id=batch_id, subject_id=await _subject(first))
            .select_for_update()
            .order_by("id")
        )
        current = await Collection.get(id=collection.id)
        if current.status != CollectionStatus.PENDING:
            return
        outcome = CollectionStatus.SUCCEEDED if result.succeeded else CollectionStatus.DECLINED
        current.status = COLLECTION.advance(current.status, outcome)
        current.reason, current.resolved_at = result.reason, now
        await current.save(update_fields=["status", "reason", "resolved_at"])
        covered = [b for b in bills if b.status == BillStatus.COLLECTING]
        if result.succeeded:
            await post_transfer(
                ledger.collection(
                    f"collection:{current.id}",
                    subject_id=covered[0].subject_id,
                    amount_fen=current.amount_fen,
                ),
                hospital_id=covered[0].hospital_id,
                now=now,
            )
        for bill in covered:
            if result.succeeded:
                bill.collected_fen += bill.outstanding_fen
                bill.status = BILL.advance(bill.status, BillStatus.PAID)
                bill.paid_at, bill.next_retry_at = now, None
                await emit(bill.hospital_id, "bill.paid", bill_event(bill), now)
            else:
                # Declined: each bill goes back to owing and is retried on its own.
                after_decline(bill, _as_settlement(current), config, now)
            await bill.save(update_fields=["collected_fen", "status", "paid_at", "next_retry_at"])


async def _subject(collection: Collection) -> str:
    bill = await Bill.get(id=collection.bill_id)
    return bill.subject_id


def _as_settlement(collection: Collection) -> Collection:
    """A declined batch charge schedules retries like a declined settlement collection."""
    return Collection(trigger=CollectionTrigger.SETTLEMENT, kind=collection.kind)
