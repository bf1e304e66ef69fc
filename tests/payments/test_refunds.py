"""Refunds: before and after settlement, proportional split, never past the charge."""

from __future__ import annotations

import asyncio

import httpx

from app.context import AppContext
from payments.models import Bill, SandboxOperation
from tests.factories import assert_problem
from tests.payments.helpers import (
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    refund,
)


async def test_refund_before_settlement_reduces_the_bill(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(10_000, "A")], "c1")
    done = await refund(client, where, encounter["id"], "c1", 4_000)
    assert done.status_code == 201, done.text
    assert done.json()["after_settlement"] is False
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["total_fen"] == 6_000 and settled["insurance_fen"] == 4_200
    await check_books()


async def test_refund_after_settlement_splits_in_proportion_and_pays_back(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")], "c1")
    await charge(client, where, encounter["id"], [item(5_000, "C")], "c2")
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["self_pay_fen"] == 3_000 + 5_000
    part = await refund(client, where, encounter["id"], "c1", 5_000, refund_id="r1")
    assert part.status_code == 201, part.text
    assert (part.json()["insurance_fen"], part.json()["self_pay_fen"]) == (3_500, 1_500)
    rest = await refund(client, where, encounter["id"], "c1", 5_000, refund_id="r2")
    assert (rest.json()["insurance_fen"], rest.json()["self_pay_fen"]) == (3_500, 1_500)
    bill = (await client.get(f"/v1/bills/{settled['bill_id']}", headers=person.headers)).json()
    assert bill["refunded_insurance_fen"] == 7_000 and bill["refunded_self_pay_fen"] == 3_000
    assert bill["paid_out_fen"] == 3_000
    assert await SandboxOperation.filter(kind="payout").count() == 2
    over = await refund(client, where, encounter["id"], "c1", 1)
    assert_problem(over, 409, "refund_exceeds_charge")
    await check_books()


async def test_refund_of_an_unpaid_bill_lowers_what_is_owed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_declined")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(6_000, "C")], "c1")
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["status"] == "payment_pending"
    await refund(client, where, encounter["id"], "c1", 6_000)
    bill = await Bill.get(id=settled["bill_id"])
    assert bill.outstanding_fen == 0 and bill.status == "paid" and bill.paid_out_fen == 0
    await check_books()


async def test_refund_id_is_idempotent(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(1_000)], "c1")
    first = await refund(client, where, encounter["id"], "c1", 100, refund_id="r1")
    again = await refund(client, where, encounter["id"], "c1", 100, refund_id="r1")
    assert (first.status_code, again.status_code) == (201, 200)
    other = await refund(client, where, encounter["id"], "c1", 200, refund_id="r1")
    assert_problem(other, 422, "idempotency_key_reused")
    unknown = await refund(client, where, encounter["id"], "nope", 1)
    assert unknown.status_code == 404


async def test_refunds_never_exceed_the_charge_under_concurrency(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(10_000, "B")], "c1")
    await close(client, where, encounter["id"])
    responses = await asyncio.gather(
        *(refund(client, where, encounter["id"], "c1", 700) for _ in range(20))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 14 and statuses.count(409) == 6, statuses
    await check_books()


async def test_refunds_before_settlement_never_exceed_the_charge_under_concurrency(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(1_000)], "c1")
    responses = await asyncio.gather(
        *(refund(client, where, encounter["id"], "c1", 300) for _ in range(10))
    )
    assert [r.status_code for r in responses].count(201) == 3
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["total_fen"] == 100
