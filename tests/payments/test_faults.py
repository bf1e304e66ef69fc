"""Faults: a crash between booking and collecting, provider timeouts. No money is lost,
none is collected twice."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Bill, Collection, LedgerTransfer, SandboxOperation
from tests.factories import assert_problem
from tests.payments.helpers import (
    CrashingProvider,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    payments_runtime,
)


async def test_crash_after_booking_is_finished_by_the_worker_without_double_collection(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(20_000, "C")])
    rt = payments_runtime(ctx)
    provider, rt.provider = rt.provider, CrashingProvider(rt.provider)
    crashed = await close(client, where, encounter["id"], idem="close-crash")
    assert crashed.status_code == 500
    rt.provider = provider
    bill = await Bill.get(encounter_id=encounter["id"])
    assert bill.status == "collecting"
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    assert await SandboxOperation.all().count() == 0
    await check_books()
    # The client retries with the same key: the server failure released it, and the
    # settlement is not repeated; the money is still being collected.
    retried = await close(client, where, encounter["id"], idem="close-crash")
    assert retried.status_code == 200
    assert retried.json()["status"] == "payment_pending"
    assert await Bill.filter(encounter_id=encounter["id"]).count() == 1
    # Not yet: a collection whose lease is live may still be in flight in another process;
    # the crashed caller stopped renewing it, so seconds later the worker takes it over.
    assert await tasks.resume_collections(ctx) == 0
    clock.advance(timedelta(seconds=7))
    assert await tasks.resume_collections(ctx) == 1
    assert await tasks.resume_collections(ctx) == 0
    bill = await Bill.get(id=bill.id)
    assert bill.status == "paid" and bill.collected_fen == 20_000
    assert await SandboxOperation.filter(kind="collect").count() == 1
    assert await LedgerTransfer.filter(kind="collection").count() == 1
    await check_books()


async def test_provider_timeout_is_retried_with_the_same_key(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_timeout")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(9_999, "C")])
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["status"] == "settled"
    [operation] = await SandboxOperation.all()
    assert operation.attempts == 2 and operation.amount_fen == 9_999
    await check_books()


async def test_unanswered_provider_leaves_the_collection_for_the_worker(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    rt = payments_runtime(ctx)
    rt.config = dataclasses.replace(rt.config, provider_attempts=1)
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_timeout")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(5_000, "C")])
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["status"] == "payment_pending"
    bill = await Bill.get(id=settled["bill_id"])
    # The processor took the money but we do not know yet: it is owed, not lost.
    assert bill.status == "collecting"
    assert await SandboxOperation.filter(kind="collect").count() == 1
    await check_books()
    in_flight = await client.post(f"/v1/bills/{bill.id}/pay", json={}, headers=person.headers)
    assert_problem(in_flight, 409, "payment_in_progress")
    clock.advance(timedelta(seconds=30))  # the provider is not asked again at once
    assert await tasks.resume_collections(ctx) == 0
    clock.advance(timedelta(minutes=5))
    assert await tasks.resume_collections(ctx) == 1
    bill = await Bill.get(id=bill.id)
    assert bill.status == "paid" and bill.collected_fen == 5_000
    [operation] = await SandboxOperation.all()
    assert operation.attempts == 2
    assert await Collection.filter(status="succeeded").count() == 1
    await check_books()
