"""Closing encounters: the split, the bill, the ledger, collection, retries, overdue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Bill, LedgerTransfer, OutboxEvent, SandboxOperation
from tests.factories import assert_problem, code_of
from tests.payments.helpers import (
    charge,
    check_books,
    close,
    hospital,
    item,
    key,
    open_encounter,
    patient,
    refreshed,
    relogged,
)


async def test_close_splits_bills_and_collects_self_pay(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A"), item(10_000, "B")], "c1")
    await charge(client, where, encounter["id"], [item(5_000, "C", quantity=2)], "c2")
    settled = await close(client, where, encounter["id"])
    assert settled.status_code == 200, settled.text
    body = settled.json()
    # A: 70 % of 10,000; B: 70 % of the 9,000 left after the 10 % self share; C: none.
    assert body["total_fen"] == 30_000
    assert body["insurance_fen"] == 7_000 + 6_300
    assert body["self_pay_fen"] == 30_000 - 13_300
    assert body["status"] == "settled"
    bill = (await client.get(f"/v1/bills/{body['bill_id']}", headers=person.headers)).json()
    assert bill["status"] == "paid"
    assert bill["collected_fen"] == 16_700 and bill["outstanding_fen"] == 0
    assert [line["charge_id"] for line in bill["lines"]] == ["c1", "c1", "c2"]
    assert sum(line["insurance_fen"] for line in bill["lines"]) == 13_300
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["available_fen"] == 300_000 and credit["open_encounters"] == []
    await check_books()


async def test_deductible_is_counted_across_encounters_of_the_year(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    # 200 yuan of the 1,500 yuan deductible left at the bureau.
    person = await patient(client, ctx, deductible_met_fen=130_000)
    first = await open_encounter(client, where, person)
    await charge(client, where, first["id"], [item(15_000)])
    one = (await close(client, where, first["id"])).json()
    assert one["insurance_fen"] == 0 and one["segments"]["self_segment_cash_fen"] == 15_000
    second = await open_encounter(client, where, person)
    await charge(client, where, second["id"], [item(15_000)])
    two = (await close(client, where, second["id"])).json()
    assert two["insurance_fen"] == 10_000 * 70 // 100  # 5,000 fill the deductible
    assert two["segments"]["self_segment_cash_fen"] == 5_000


async def test_declined_collection_leaves_payment_pending_and_is_retried_on_schedule(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_declined")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "C")])
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["status"] == "payment_pending"
    bill = await Bill.get(id=settled["bill_id"])
    assert bill.status == "payment_pending"
    assert bill.next_retry_at == clock.now() + timedelta(hours=1)
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["unpaid_fen"] == 10_000 and credit["available_fen"] == 290_000
    attempts = []
    for hours in (1, 6, 24):
        clock.advance(timedelta(hours=hours, seconds=1))
        assert await tasks.retry_collections(ctx) == 1
        bill = await Bill.get(id=settled["bill_id"])
        attempts.append(bill.retries)
        assert bill.status == "payment_pending"
    assert attempts == [1, 2, 3]
    assert bill.next_retry_at is None  # the schedule is used up; the resident pays by hand
    clock.advance(timedelta(days=2))
    assert await tasks.retry_collections(ctx) == 0
    person = await relogged(client, ctx, person)
    declined = await client.post(f"/v1/bills/{bill.id}/pay", json={}, headers=person.headers)
    assert declined.status_code == 402
    assert declined.json()["reason"] == "card_declined"
    paid = await client.post(
        f"/v1/bills/{bill.id}/pay", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    again = await client.post(f"/v1/bills/{bill.id}/pay", json={}, headers=person.headers)
    assert again.status_code == 200 and again.json()["collected_fen"] == 10_000
    await check_books()


async def test_bill_unpaid_past_the_ten_day_grace_becomes_overdue_and_suspends_credit(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_insufficient")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(8_000, "C")])
    bill_id = (await close(client, where, encounter["id"])).json()["bill_id"]
    clock.advance(timedelta(days=9))
    await tasks.run_collections(ctx)
    assert (await Bill.get(id=bill_id)).status == "payment_pending"
    clock.advance(timedelta(days=1, seconds=1))
    await tasks.run_collections(ctx)
    assert (await Bill.get(id=bill_id)).status == "overdue"
    person = await relogged(client, ctx, person)
    where = await refreshed(client, where)
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["status"] == "suspended"
    assert await OutboxEvent.filter(type="bill.overdue").count() == 1
    refused = await client.post(
        "/v1/encounters",
        json={"code": await code_of(client, person), "department": "内科"},
        headers={**where.headers, **key()},
    )
    assert_problem(refused, 402, "credit_unavailable")
    paid = await client.post(
        f"/v1/bills/{bill_id}/pay", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert paid.json()["status"] == "paid"
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["status"] == "active" and credit["available_fen"] == 300_000
    await open_encounter(client, where, person)
    await check_books()


async def test_concurrent_closes_settle_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(12_345, "B")])
    responses = await asyncio.gather(*(close(client, where, encounter["id"]) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["bill_id"] for r in responses}) == 1
    assert await Bill.filter(encounter_id=encounter["id"]).count() == 1
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    assert await LedgerTransfer.filter(kind="collection").count() == 1
    assert await SandboxOperation.filter(kind="collect").count() == 1
    await check_books()


async def test_close_with_the_same_key_replays_the_settlement(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(1_000)])
    first = await close(client, where, encounter["id"], idem="close-1")
    again = await close(client, where, encounter["id"], idem="close-1")
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_encounter_without_charges_settles_at_zero(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    body = (await close(client, where, encounter["id"])).json()
    assert (body["total_fen"], body["self_pay_fen"], body["status"]) == (0, 0, "settled")
    await check_books()


async def test_bills_are_private_to_their_resident(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    owner, stranger = await patient(client, ctx), await patient(client, ctx)
    encounter = await open_encounter(client, where, owner)
    await charge(client, where, encounter["id"], [item(1_000)])
    bill_id = (await close(client, where, encounter["id"])).json()["bill_id"]
    assert (await client.get(f"/v1/bills/{bill_id}", headers=stranger.headers)).status_code == 404
    listed = (await client.get("/v1/bills", headers=stranger.headers)).json()
    assert listed == {"bills": []}
    paying = await client.post(f"/v1/bills/{bill_id}/pay", json={}, headers=stranger.headers)
    assert paying.status_code == 404


async def test_concurrent_duplicates_of_one_close_are_answered_in_progress_or_replayed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    await charge(client, where, encounter["id"], [item(3_000, "A")])
    responses = await asyncio.gather(
        *(close(client, where, encounter["id"], idem="same-close") for _ in range(8))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409} and 200 in statuses, statuses
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "request_in_progress")
    assert len({r.json()["bill_id"] for r in responses if r.status_code == 200}) == 1
    again = await close(client, where, encounter["id"], idem="same-close")
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert await LedgerTransfer.filter(kind="settlement").count() == 1


async def test_deductible_starts_again_in_a_new_medical_year_in_april(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    """The medical year runs April to March: January is still last April's year, April 1st
    starts a new one with the whole deductible (1,500 yuan) to fill again."""
    clock.set(clock.now().replace(month=5, day=2))
    where = await hospital(client, ctx)
    person = await patient(client, ctx, deductible_met_fen=140_000)  # 100 yuan left
    first = await open_encounter(client, where, person)
    await charge(client, where, first["id"], [item(30_000)])
    assert (await close(client, where, first["id"])).json()["insurance_fen"] == 14_000
    clock.set(clock.now().replace(year=clock.now().year + 1, month=1, day=2))
    where, person = await refreshed(client, where), await relogged(client, ctx, person)
    january = await open_encounter(client, where, person)
    await charge(client, where, january["id"], [item(30_000)])
    assert (await close(client, where, january["id"])).json()["insurance_fen"] == 21_000
    clock.set(clock.now().replace(month=4, day=1))
    where, person = await refreshed(client, where), await relogged(client, ctx, person)
    april = await open_encounter(client, where, person)
    await charge(client, where, april["id"], [item(30_000)])
    settled = (await close(client, where, april["id"])).json()
    assert settled["insurance_fen"] == 0
    assert settled["segments"]["self_segment_cash_fen"] == 30_000
