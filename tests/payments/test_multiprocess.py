"""Two real server processes on one PostgreSQL: row locks, not process memory, keep money
movements single."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from app.context import AppContext
from payments.models import Bill, LedgerTransfer, SandboxOperation
from tests.conftest import ServerProcess
from tests.payments.helpers import check_books, hospital, item, open_encounter, patient


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
