"""`GET /v1/encounters?date=`: the desk's list of a hospital's encounters of a local day."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.payments.helpers import charge, close, hospital, item, open_encounter, patient


async def test_todays_encounters_newest_first_with_totals_and_masked_name(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(clock.now().replace(hour=2, minute=0, second=0))  # 10:00 in UTC+8
    day = (clock.now() + timedelta(hours=8)).date().isoformat()
    where, other = await hospital(client, ctx), await hospital(client, ctx)
    first_patient, second_patient = await patient(client, ctx), await patient(client, ctx)
    first = await open_encounter(client, where, first_patient, "内科")
    await charge(client, where, first["id"], [item(10_000, "A"), item(2_000, "C")], "a")
    assert (await close(client, where, first["id"])).status_code == 200
    clock.advance(timedelta(minutes=5))
    second = await open_encounter(client, where, second_patient, "外科")
    await charge(client, where, second["id"], [item(3_000, "B")], "b")
    await open_encounter(client, other, await patient(client, ctx))  # another hospital's

    listed = await client.get(f"/v1/encounters?date={day}", headers=where.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["date"] == day
    rows = body["encounters"]
    assert [r["id"] for r in rows] == [second["id"], first["id"]]
    newest, oldest = rows
    assert newest["status"] == "open" and newest["department"] == "外科"
    assert newest["charged_fen"] == 3_000 and newest["bill"] is None
    assert newest["patient"]["masked_name"] == second["patient"]["masked_name"]
    assert "*" in newest["patient"]["masked_name"]
    assert oldest["status"] == "settled" and oldest["charged_fen"] == 12_000
    bill = oldest["bill"]
    assert bill["total_fen"] == 12_000
    assert bill["insurance_fen"] + bill["self_pay_fen"] == 12_000
    assert bill["insurance_fen"] == 7_000
    assert bill["settlement_status"] == "settled" and bill["status"] == "paid"


async def test_the_day_is_local_not_utc(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    # 17:00 UTC is 01:00 the next day in UTC+8: the encounter belongs to the next local day.
    clock.set(clock.now().replace(hour=17, minute=0, second=0))
    utc_day = clock.now().date()
    where = await hospital(client, ctx)
    opened = await open_encounter(client, where, await patient(client, ctx))
    same = await client.get(f"/v1/encounters?date={utc_day.isoformat()}", headers=where.headers)
    nxt = utc_day + timedelta(days=1)
    local = await client.get(f"/v1/encounters?date={nxt.isoformat()}", headers=where.headers)
    assert same.json()["encounters"] == []
    assert [r["id"] for r in local.json()["encounters"]] == [opened["id"]]


async def test_the_list_needs_a_hospital_client_and_a_sane_date(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    assert (await client.get("/v1/encounters?date=2026-01-15")).status_code == 401
    forbidden = await client.get("/v1/encounters?date=2026-01-15", headers=person.headers)
    assert forbidden.status_code == 403
    for bad in ("", "?date=yesterday", "?date=3000-01-01", "?date=2026-01-15&x=1"):
        answer = await client.get(f"/v1/encounters{bad}", headers=where.headers)
        assert answer.status_code == 422, (bad, answer.text)


async def test_the_operation_is_in_the_api_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/encounters"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["date"]
    assert "EncounterList" in document["components"]["schemas"]
