"""The ledger's invariants after a randomized, concurrent workload with retries."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Collection, LedgerEntry, LedgerTransfer
from tests.factories import Resident
from tests.payments.helpers import (
    Hospital,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    refund,
)

METHODS = ["pm_sandbox_ok", "pm_sandbox_ok", "pm_sandbox_declined", "pm_sandbox_timeout"]


async def visit(
    client: httpx.AsyncClient, where: Hospital, person: Resident, rng: random.Random
) -> None:
    encounter = await open_encounter(client, where, person)
    charge_ids = [f"c{n}" for n in range(rng.randint(1, 4))]
    bodies = {
        cid: [item(rng.randint(1, 20_000), rng.choice("ABC"), rng.randint(1, 3)) for _ in range(2)]
        for cid in charge_ids
    }
    # Each charge is sent twice at once: a retry racing its original.
    await asyncio.gather(
        *(
            charge(client, where, encounter["id"], bodies[cid], cid)
            for cid in charge_ids
            for _ in "ab"
        )
    )
    if rng.random() < 0.3:
        await refund(client, where, encounter["id"], charge_ids[0], rng.randint(1, 500))
    key = f"close-{encounter['id']}"
    closes = [close(client, where, encounter["id"], idem=key) for _ in range(rng.randint(1, 3))]
    closes += [close(client, where, encounter["id"])]
    await asyncio.gather(*closes, return_exceptions=False)
    if rng.random() < 0.5:
        cid = rng.choice(charge_ids)
        await asyncio.gather(
            *(refund(client, where, encounter["id"], cid, rng.randint(1, 3_000)) for _ in range(3))
        )


async def test_books_balance_after_a_random_concurrent_workload(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    rng = random.Random(20260115)
    hospitals = [await hospital(client, ctx) for _ in range(3)]
    people = [await patient(client, ctx, payment_method=rng.choice(METHODS)) for _ in range(8)]
    for _ in range(2):
        await asyncio.gather(
            *(visit(client, rng.choice(hospitals), person, rng) for person in people)
        )
        await check_books()
    # The worker's retries and resumptions, run twice over: nothing may post twice.
    for _ in range(3):
        clock.advance(timedelta(hours=7))
        await asyncio.gather(tasks.run_collections(ctx), tasks.run_collections(ctx))
    await check_books()
    transfers = await LedgerTransfer.all().count()
    entries = await LedgerEntry.all().count()
    await tasks.run_collections(ctx)
    assert (await LedgerTransfer.all().count(), await LedgerEntry.all().count()) == (
        transfers,
        entries,
    )
    assert await Collection.filter(status="pending").count() == 0
