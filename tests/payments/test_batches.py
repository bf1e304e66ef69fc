"""Settlement timing chosen by the hospital: a daily batch at its hour collects each
patient's day in one charge, survives a crash mid-batch without charging anyone twice,
and shows in the daily statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Bill, Collection, SandboxOperation, SettlementBatch
from payments.provider import PaymentProvider, ProviderResult
from tests.factories import assert_problem
from tests.payments.helpers import (
    Hospital,
    InjectedCrash,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    payments_runtime,
    refreshed,
)

SHANGHAI = timezone(timedelta(hours=8))


async def daily(client: httpx.AsyncClient, ctx: AppContext, hour: int = 23) -> Hospital:
    where = await hospital(client, ctx)
    timing = await client.put(
        "/v1/hospitals/me/settlement",
        json={"settlement_mode": "daily", "batch_hour": hour},
        headers=where.headers,
    )
    assert timing.status_code == 200, timing.text
    assert timing.json()["settlement_mode"] == "daily"
    return where


async def visit(
    client: httpx.AsyncClient, where: Hospital, person: object, amount: int
) -> dict[str, object]:
    encounter = await open_encounter(client, where, person)  # type: ignore[arg-type]
    await charge(client, where, encounter["id"], [item(amount, "C")])
    settled = await close(client, where, encounter["id"])
    assert settled.status_code == 200, settled.text
    body: dict[str, object] = settled.json()
    return body


async def test_a_patients_day_is_collected_in_one_charge_at_the_batch_hour(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 5, 6, 9, 0, tzinfo=SHANGHAI))
    where = await daily(client, ctx)
    alice, bob = await patient(client, ctx), await patient(client, ctx)
    first = await visit(client, where, alice, 3_000)
    second = await visit(client, where, alice, 4_000)
    await visit(client, where, bob, 5_000)
    assert first["status"] == "payment_pending"
    bill = await Bill.get(id=str(first["bill_id"]))
    assert bill.status == "scheduled" and bill.batch_id == f"batch:{where.id}:2026-05-06"
    assert await tasks.run_daily_batches(ctx) == 0  # not before 23:00 local
    assert await SandboxOperation.all().count() == 0
    clock.set(datetime(2026, 5, 6, 23, 0, 5, tzinfo=SHANGHAI))
    assert await tasks.run_daily_batches(ctx) == 1
    assert await tasks.run_daily_batches(ctx) == 0
    charges = sorted(op.amount_fen for op in await SandboxOperation.all())
    assert charges == [5_000, 7_000]  # Alice's day in one charge, Bob's in another
    for settled in (first, second):
        paid = await Bill.get(id=str(settled["bill_id"]))
        assert paid.status == "paid" and paid.collected_fen == paid.self_pay_fen
    batch = await SettlementBatch.get(id=f"batch:{where.id}:2026-05-06")
    assert (batch.status, batch.encounters, batch.charges, batch.amount_fen) == (
        "done",
        3,
        2,
        12_000,
    )
    where = await refreshed(client, where)  # its token expired over the day
    statement = await client.get(
        "/v1/hospitals/me/statements?date=2026-05-06", headers=where.headers
    )
    assert statement.status_code == 200, statement.text
    assert statement.json()["batches"] == [
        {
            "id": batch.id,
            "day": "2026-05-06",
            "status": "done",
            "encounters": 3,
            "charges": 2,
            "amount_fen": 12_000,
        }
    ]
    await check_books()


async def test_an_encounter_after_the_batch_hour_waits_for_the_next_day(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 5, 6, 23, 30, tzinfo=SHANGHAI))
    where = await daily(client, ctx)
    settled = await visit(client, where, await patient(client, ctx), 2_000)
    bill = await Bill.get(id=str(settled["bill_id"]))
    assert bill.batch_id == f"batch:{where.id}:2026-05-07"


@dataclass
class DiesOnSecondCharge:
    """Moves the money of the second charge, then the process dies before the answer."""

    inner: PaymentProvider
    name: str = "dies"
    calls: int = 0

    async def bind(self, payment_method: str) -> None:
        await self.inner.bind(payment_method)

    async def collect(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        self.calls += 1
        result = await self.inner.collect(
            key=key, payment_method=payment_method, amount_fen=amount_fen, now=now
        )
        if self.calls == 2:
            raise InjectedCrash("died mid-batch after the processor took the money")
        return result

    async def payout(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        return await self.inner.payout(
            key=key, payment_method=payment_method, amount_fen=amount_fen, now=now
        )


async def test_a_crash_mid_batch_charges_nobody_twice(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 5, 6, 10, 0, tzinfo=SHANGHAI))
    where = await daily(client, ctx, hour=20)
    people = [await patient(client, ctx) for _ in range(3)]
    for n, person in enumerate(people):
        await visit(client, where, person, 1_000 * (n + 1))
    clock.set(datetime(2026, 5, 6, 20, 1, tzinfo=SHANGHAI))
    rt = payments_runtime(ctx)
    provider, rt.provider = rt.provider, DiesOnSecondCharge(rt.provider)
    try:
        try:
            await tasks.run_daily_batches(ctx)
            raise AssertionError("the injected crash did not happen")
        except InjectedCrash:
            pass
    finally:
        rt.provider = provider
    assert await SandboxOperation.all().count() == 2
    # The rerun asks the processor again under the same key and charges the third once.
    assert await tasks.run_daily_batches(ctx) == 1
    operations = await SandboxOperation.all()
    assert sorted(op.amount_fen for op in operations) == [1_000, 2_000, 3_000]
    assert sorted(op.attempts for op in operations) == [1, 1, 2]
    assert await Collection.filter(status="succeeded").count() == 3
    assert not await Bill.exclude(status="paid").exists()
    assert (await SettlementBatch.get(id=f"batch:{where.id}:2026-05-06")).status == "done"
    await check_books()


async def test_settlement_timing_is_validated(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    for body in (
        {"settlement_mode": "weekly"},
        {"settlement_mode": "daily", "batch_hour": 24},
    ):
        bad = await client.put("/v1/hospitals/me/settlement", json=body, headers=where.headers)
        assert_problem(bad, 422, bad.json()["code"])
        assert bad.json()["code"] != "internal_error"
