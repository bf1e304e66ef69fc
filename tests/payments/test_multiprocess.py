"""Two real server processes on one PostgreSQL: row locks, not process memory, keep money
movements single."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Bill, LedgerTransfer, SandboxBureauOperation, SandboxOperation
from tests.conftest import ServerProcess
from tests.payments.helpers import (
    charge,
    check_books,
    hospital,
    item,
    open_encounter,
    patient,
    payments_runtime,
)


@pytest.mark.cluster
@pytest.mark.real_only
@pytest.mark.e2e
async def test_two_processes_never_overcharge_or_settle_twice(
    client: httpx.AsyncClient, ctx: AppContext, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server(workers=2)
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    path = f"/v1/encounters/{encounter['id']}"
    async with httpx.AsyncClient(base_url=server.base_url, headers=where.headers) as remote:
        charges = await asyncio.gather(
            *(
                remote.post(f"{path}/charges", json={"charge_id": f"c{n}", "items": [item(20_000)]})
                for n in range(20)
            )
        )
        statuses = [r.status_code for r in charges]
        assert statuses.count(201) == 15 and statuses.count(402) == 5, statuses
        closes = await asyncio.gather(
            *(remote.post(f"{path}/close", headers={"Idempotency-Key": f"k{n}"}) for n in range(10))
        )
    assert {r.status_code for r in closes} == {200}, [r.text for r in closes]
    assert len({r.json()["bill_id"] for r in closes}) == 1
    bill = await Bill.get(encounter_id=encounter["id"])
    assert bill.total_fen == 300_000
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    assert await SandboxOperation.filter(kind="collect").count() == 1
    await check_books()


@pytest.mark.real_only
@pytest.mark.e2e
async def test_server_killed_between_bureau_and_booking_settles_once_after_recovery(
    client: httpx.AsyncClient,
    ctx: AppContext,
    clock: FrozenClock,
    start_server: Callable[..., ServerProcess],
) -> None:
    """SIGKILL while the bureau has settled and its answer is on its way: after recovery
    (the bureau job, in another process) there is one settlement, one bill, and the books
    balance."""
    server = start_server()
    where = await hospital(client, ctx)
    person = await patient(client, ctx, persona="slow")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")])
    path = f"{server.base_url}/v1/encounters/{encounter['id']}/close"
    async with httpx.AsyncClient(headers=where.headers, timeout=30) as remote:
        closing = asyncio.ensure_future(remote.post(path, headers={"Idempotency-Key": "kill"}))
        for _ in range(200):
            if await SandboxBureauOperation.exists(kind="settle"):
                break
            await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        with pytest.raises(httpx.HTTPError):
            await closing
    assert await SandboxBureauOperation.filter(kind="settle").count() == 1
    assert not await Bill.exists(encounter_id=encounter["id"])
    payments_runtime(ctx).sandbox_bureau.slow_answer_s = 0  # type: ignore[union-attr]
    clock.set(datetime.now(UTC) + timedelta(minutes=1))
    assert await tasks.finish_bureau_settlements(ctx) == 1
    bill = await Bill.get(encounter_id=encounter["id"])
    assert bill.fund_fen == 6_000 and bill.status == "paid"
    [operation] = await SandboxBureauOperation.all()
    assert operation.attempts == 2
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    await check_books()
