"""The e-invoice through faults: a booking that fails, or a real server killed between the
bureau's settlement and our booking, leaves no invoice; recovery issues exactly one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from payments import settlement, tasks
from payments.models import (
    Bill,
    BureauSettlement,
    CreditAccount,
    Invoice,
    LedgerTransfer,
    SandboxBureauOperation,
)
from tests.conftest import Backend, ServerProcess
from tests.payments.helpers import (
    InjectedCrash,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
)


async def test_an_invoice_never_outlives_a_booking_that_rolled_back(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    # A hook after the invoice's fails: the bill, the ledger and the invoice go together.
    async def crash(ctx: AppContext, bill: Bill, booked: settlement.Booked) -> None:
        raise InjectedCrash("injected crash inside the booking, after the invoice")

    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(9_000)])
    settlement.on_settled.append(crash)
    try:
        assert (await close(client, where, encounter["id"])).status_code == 500
    finally:
        settlement.on_settled.remove(crash)
    assert not await Invoice.exists() and not await Bill.exists()
    assert not await LedgerTransfer.exists(kind="settlement")
    early = await client.get(f"/v1/encounters/{encounter['id']}/invoice", headers=where.headers)
    assert early.status_code == 409 and early.json()["code"] == "bill_not_settled"
    clock.advance(timedelta(seconds=31))
    assert await tasks.finish_bureau_settlements(ctx) == 1
    assert await tasks.finish_bureau_settlements(ctx) == 0
    bill = await Bill.get(encounter_id=encounter["id"])
    [invoice] = await Invoice.all()
    assert invoice.bill_id == bill.id and invoice.kind == "blue"
    read = await client.get(f"/v1/encounters/{encounter['id']}/invoice", headers=where.headers)
    assert read.json()["invoice"]["number"] == f"{invoice.id:010d}"
    assert await Invoice.all().count() == 1
    await check_books()


async def _wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.real_only
@pytest.mark.e2e
async def test_a_server_killed_between_bureau_and_booking_recovers_with_one_invoice(
    client: httpx.AsyncClient,
    ctx: AppContext,
    backend: Backend,
    start_server: Callable[..., ServerProcess],
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(20_000, "A"), item(1_000, "C")])
    account = await CreditAccount.get(subject_id=person.subject_id)
    knobs = {"SUISHEN_BUREAU_RETRY_SECONDS": "1", "DB_STATEMENT_TIMEOUT_S": "60"}
    server = start_server(**knobs)
    # Our own session holds the patient's account row: the server's booking transaction
    # (its first step locks that row) waits behind it, after the bureau has settled.
    blocker = await asyncpg.connect(backend.database_url)
    try:
        await blocker.execute("BEGIN")
        await blocker.execute(
            "SELECT id FROM payments_credit_accounts WHERE id = $1 FOR UPDATE", account.id
        )
        remote = httpx.AsyncClient(base_url=server.base_url, headers=where.headers, timeout=60)
        closing = asyncio.ensure_future(
            remote.post(f"/v1/encounters/{encounter['id']}/close", headers={"Idempotency-Key": "k"})
        )

        async def booking_waits() -> bool:
            settled = await SandboxBureauOperation.filter(kind="settle").count()
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return settled == 1 and waiting >= 1

        await _wait_for(booking_waits, 20, "the server to block in the booking")
        server.process.kill()
        server.process.wait(timeout=10)
        with pytest.raises(httpx.HTTPError):
            await closing
        await remote.aclose()
        # The dead server's session must not book after we let go: end it first.
        await blocker.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        )
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    assert not await Bill.exists() and not await Invoice.exists()
    assert (await BureauSettlement.get(encounter_id=encounter["id"])).status == "pending"
    # Recovery: a new server whose worker finishes the pending settlement.
    recovered = start_server(EMBEDDED_WORKER="1", **knobs)

    async def paid() -> bool:
        bill = await Bill.get_or_none(encounter_id=encounter["id"])
        return bill is not None and bill.status == "paid"

    await _wait_for(paid, 40, "the recovered worker to settle and collect")
    bill = await Bill.get(encounter_id=encounter["id"])
    assert await Bill.filter(encounter_id=encounter["id"]).count() == 1
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    assert await Invoice.filter(bill_id=bill.id).count() == 1
    assert await Invoice.all().count() == 1
    async with httpx.AsyncClient(base_url=recovered.base_url) as fresh:
        read = await fresh.get(f"/v1/bills/{bill.id}/invoice", headers=person.headers)
    assert read.status_code == 200, read.text
    assert read.json()["invoice"]["number"] == f"{(await Invoice.get(bill_id=bill.id)).id:010d}"
    await check_books()
