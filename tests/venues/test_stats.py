"""GET /v1/venues/{id}/stats: occupancy, entries by gate and local hour, the gates' last
contact (throttled on the scan path) and bundle age, the day's slots with booked/entered."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import assert_problem, code_of, resident
from tests.venues.helpers import (
    book,
    local_time,
    make_gate,
    make_slot,
    make_venue,
    scan,
)
from venues.config import VenueRules
from venues.models import Gate


async def test_stats_count_entries_by_gate_and_hour_and_slots(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(local_time(clock.now(), days=1, hour=10) + timedelta(minutes=50))
    venue = await make_venue(client, ctx, capacity=50)
    east = await make_gate(client, venue, direction="in", name="East")
    west = await make_gate(client, venue, direction="both", name="West")
    slot = await make_slot(client, venue, local_time(clock.now(), days=0, hour=10))
    later = await make_slot(client, venue, local_time(clock.now(), days=0, hour=11))
    ann, bo, cy = [await resident(client, ctx) for _ in range(3)]
    assert (await book(client, cy, later["id"])).status_code == 201
    assert (await scan(client, east, await code_of(client, ann))).json()["decision"] == "admit"
    assert (await scan(client, west, await code_of(client, bo))).json()["decision"] == "admit"
    denied = await scan(client, east, await code_of(client, ann))
    assert denied.json()["reason"] == "already_inside"
    clock.advance(minutes=15)
    assert (await scan(client, west, await code_of(client, bo), "out")).json()["occupancy"] == 1
    assert (await scan(client, west, await code_of(client, cy))).json()["decision"] == "admit"

    got = await client.get(f"/v1/venues/{venue.id}/stats", headers=venue.operator.headers)
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    body = got.json()
    assert body["day"] == VenueRules().local_day(clock.now()).isoformat()
    assert (body["occupancy"], body["capacity"]) == (2, 50)
    assert body["by_gate_hour"] == [
        {"gate_id": east.id, "gate_name": "East", "hour": 10, "entries": 1, "exits": 0},
        {"gate_id": west.id, "gate_name": "West", "hour": 10, "entries": 1, "exits": 0},
        {"gate_id": west.id, "gate_name": "West", "hour": 11, "entries": 1, "exits": 1},
    ]
    slots = {s["id"]: s for s in body["slots"]}
    assert (slots[slot["id"]]["booked"], slots[slot["id"]]["entered"]) == (0, 2)
    assert (slots[later["id"]]["booked"], slots[later["id"]]["entered"]) == (1, 1)
    gates = {g["id"]: g for g in body["gates"]}
    assert gates[east.id]["last_contact_at"] is not None
    assert gates[east.id]["bundle_fetched_at"] is None and gates[east.id]["bundle_age_s"] is None

    yesterday = (VenueRules().local_day(clock.now()) - timedelta(days=1)).isoformat()
    before = await client.get(
        f"/v1/venues/{venue.id}/stats?day={yesterday}", headers=venue.operator.headers
    )
    assert before.status_code == 200
    assert before.json()["by_gate_hour"] == [] and before.json()["slots"] == []


async def test_last_contact_is_throttled_and_bundle_age_reported(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    ann = await resident(client, ctx)
    first = clock.now()
    await scan(client, gate, await code_of(client, ann))
    assert (await Gate.get(id=gate.id)).last_contact_at == first
    clock.advance(seconds=20)
    await scan(client, gate, await code_of(client, ann), "out")
    assert (await Gate.get(id=gate.id)).last_contact_at == first, "written at most every 30 s"
    clock.advance(seconds=15)
    await scan(client, gate, await code_of(client, ann))
    assert (await Gate.get(id=gate.id)).last_contact_at == clock.now()

    clock.advance(seconds=5)
    fetched = clock.now()
    assert (await client.get("/v1/gates/bundle", headers=gate.headers)).status_code == 200
    stored = await Gate.get(id=gate.id)
    assert stored.last_contact_at == fetched and stored.bundle_fetched_at == fetched
    clock.advance(seconds=90)
    got = await client.get(f"/v1/venues/{venue.id}/stats", headers=venue.operator.headers)
    (shown,) = got.json()["gates"]
    assert shown["bundle_age_s"] == 90
    assert shown["direction"] == "both" and shown["name"] == "G"


async def test_stats_belong_to_the_venues_operator(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    other = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    path = f"/v1/venues/{venue.id}/stats"
    assert_problem(await client.get(path, headers=other.operator.headers), 403, "forbidden")
    assert (await client.get(path, headers=gate.headers)).status_code == 403
    assert (await client.get(path)).status_code == 401
    bad = await client.get(f"{path}?day=2026-13-01", headers=venue.operator.headers)
    assert bad.status_code == 422
    missing = await client.get(
        "/v1/venues/ven_0000000000000000/stats", headers=venue.operator.headers
    )
    assert missing.status_code in (403, 404)
