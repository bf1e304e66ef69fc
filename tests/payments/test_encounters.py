"""Encounters and charges: opening on credit, holds, idempotent charges, auto-close."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from tests.factories import assert_problem, code_of, resident
from tests.payments.helpers import (
    charge,
    close,
    hospital,
    item,
    key,
    open_encounter,
    patient,
    refreshed,
    relogged,
)


async def test_opening_an_encounter_holds_credit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    assert encounter["status"] == "open"
    assert encounter["hold_fen"] == 50_000
    assert encounter["patient"]["masked_name"] == "张*明"
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["available_fen"] == 250_000
    assert [e["id"] for e in credit["open_encounters"]] == [encounter["id"]]


async def test_patient_not_enrolled_gets_credit_unavailable(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await resident(client, ctx)
    response = await client.post(
        "/v1/encounters",
        json={"code": await code_of(client, person), "department": "内科"},
        headers={**where.headers, **key()},
    )
    assert_problem(response, 402, "credit_unavailable")


async def test_open_needs_an_idempotency_key_and_replays_with_it(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    body = {"code": await code_of(client, person), "department": "内科"}
    missing = await client.post("/v1/encounters", json=body, headers=where.headers)
    assert missing.status_code == 400
    headers = {**where.headers, **key()}
    first = await client.post("/v1/encounters", json=body, headers=headers)
    again = await client.post("/v1/encounters", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.post(
        "/v1/encounters", json={**body, "department": "外科"}, headers=headers
    )
    assert_problem(other, 422, "idempotency_key_reused")


async def test_a_code_scanned_by_one_hospital_is_replayed_at_another(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    first, second = await hospital(client, ctx), await hospital(client, ctx)
    person = await patient(client, ctx)
    body = {"code": await code_of(client, person), "department": "内科"}
    ok = await client.post("/v1/encounters", json=body, headers={**first.headers, **key()})
    assert ok.status_code == 201
    replay = await client.post("/v1/encounters", json=body, headers={**second.headers, **key()})
    assert_problem(replay, 422, "code_rejected")
    assert replay.json()["reason"] == "code_replayed"


async def test_charge_beyond_the_hold_extends_it_while_credit_remains(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    small = await charge(client, where, encounter["id"], [item(30_000)])
    assert small.status_code == 201 and small.json()["hold_fen"] == 50_000
    big = await charge(client, where, encounter["id"], [item(100_000, quantity=2)])
    assert big.status_code == 201, big.text
    assert big.json()["hold_fen"] == 230_000
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["available_fen"] == 70_000
    too_much = await charge(client, where, encounter["id"], [item(70_001)])
    assert_problem(too_much, 402, "credit_limit_exceeded")
    exact = await charge(client, where, encounter["id"], [item(70_000)])
    assert exact.status_code == 201 and exact.json()["hold_fen"] == 300_000


async def test_charge_id_is_idempotent(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    items = [item(1_000, "A", 2), item(500, "C")]
    first = await charge(client, where, encounter["id"], items, charge_id="rx-1")
    again = await charge(client, where, encounter["id"], items, charge_id="rx-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["amount_fen"] == first.json()["amount_fen"] == 2_500
    changed = await charge(client, where, encounter["id"], [item(9)], charge_id="rx-1")
    assert_problem(changed, 422, "idempotency_key_reused")
    got = await client.get(f"/v1/encounters/{encounter['id']}", headers=where.headers)
    assert got.json()["charged_fen"] == 2_500


async def test_another_hospitals_encounter_is_not_found(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mine, theirs = await hospital(client, ctx), await hospital(client, ctx)
    encounter = await open_encounter(client, mine, await patient(client, ctx))
    response = await charge(client, theirs, encounter["id"], [item(100)])
    assert response.status_code == 404
    closing = await close(client, theirs, encounter["id"])
    assert closing.status_code == 404


async def test_charges_after_close_are_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    assert (await close(client, where, encounter["id"])).status_code == 200
    late = await charge(client, where, encounter["id"], [item(100)])
    assert_problem(late, 409, "encounter_closed")


async def test_the_same_charge_posted_concurrently_is_charged_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    encounter = await open_encounter(client, where, await patient(client, ctx))
    items = [item(1_000, "A", 2), item(500, "C")]
    responses = await asyncio.gather(
        *(charge(client, where, encounter["id"], items, charge_id="rx-1") for _ in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [201], statuses
    assert {r.json()["amount_fen"] for r in responses} == {2_500}
    got = await client.get(f"/v1/encounters/{encounter['id']}", headers=where.headers)
    assert got.json()["charged_fen"] == 2_500


async def test_concurrent_charges_never_exceed_the_hold_or_the_credit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    responses = await asyncio.gather(
        *(charge(client, where, encounter["id"], [item(10_000)]) for _ in range(40))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 30, statuses
    assert statuses.count(402) == 10
    got = (await client.get(f"/v1/encounters/{encounter['id']}", headers=where.headers)).json()
    assert got["charged_fen"] == 300_000
    assert got["hold_fen"] == 300_000
    credit = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert credit["available_fen"] == 0


async def test_encounters_left_open_past_a_day_are_closed_automatically(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000)])
    clock.advance(timedelta(hours=23))
    assert await tasks.auto_close_stale(ctx) == 0
    clock.advance(timedelta(hours=1, seconds=1))
    assert await tasks.auto_close_stale(ctx) == 1
    where = await refreshed(client, where)
    got = (await client.get(f"/v1/encounters/{encounter['id']}", headers=where.headers)).json()
    assert got["status"] == "settled"
    person = await relogged(client, ctx, person)
    bills = (await client.get("/v1/bills", headers=person.headers)).json()["bills"]
    assert [b["total_fen"] for b in bills] == [10_000]
