"""GET /v1/residents/me/reservations: a resident's own bookings, newest first, and the
booking rules the slot listing carries so a client can show them before a request fails."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import add_dependent, resident
from tests.venues.helpers import book, local_time, make_slot, make_venue
from venues.config import VenuesRuntime


async def test_my_reservations_newest_first_with_venue_slot_party_and_status(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    first = await make_slot(client, venue, local_time(clock.now(), days=1, hour=10))
    second = await make_slot(client, venue, local_time(clock.now(), days=2, hour=10))
    alice = await resident(client, ctx)
    kid = await add_dependent(client, alice)
    older = await book(client, alice, first["id"], [kid])
    assert older.status_code == 201, older.text
    clock.advance(seconds=5)
    newer = await book(client, alice, second["id"])
    assert newer.status_code == 201, newer.text
    cancelled = await client.delete(f"/v1/reservations/{older.json()['id']}", headers=alice.headers)
    assert cancelled.status_code == 200

    response = await client.get("/v1/residents/me/reservations", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    items = response.json()["items"]
    assert [i["id"] for i in items] == [newer.json()["id"], older.json()["id"]]
    top, bottom = items
    assert top["venue_id"] == venue.id and top["venue_name"] == venue.body["name"]
    assert top["starts_at"] == second["starts_at"] and top["ends_at"] == second["ends_at"]
    assert top["party_size"] == 1 and top["status"] == "booked" and top["cancellable"] is True
    assert bottom["party_size"] == 2 and bottom["status"] == "cancelled"
    assert bottom["cancellable"] is False and bottom["cancelled_at"] is not None


async def test_a_started_slot_is_no_longer_cancellable(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=5))
    bob = await resident(client, ctx)
    assert (await book(client, bob, slot["id"])).status_code == 201
    clock.advance(minutes=6)
    items = (await client.get("/v1/residents/me/reservations", headers=bob.headers)).json()["items"]
    assert items[0]["status"] == "booked" and items[0]["cancellable"] is False


async def test_only_the_callers_own_bookings_and_only_residents(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    slot = await make_slot(client, venue, clock.now() + timedelta(hours=2))
    carol, dave = await resident(client, ctx), await resident(client, ctx)
    assert (await book(client, carol, slot["id"])).status_code == 201
    mine = await client.get("/v1/residents/me/reservations", headers=dave.headers)
    assert mine.status_code == 200 and mine.json() == {"items": []}
    anonymous = await client.get("/v1/residents/me/reservations")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"


async def test_slot_listing_states_the_booking_rules(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    await make_slot(client, venue, clock.now() + timedelta(hours=2))
    rules = ctx.runtime(VenuesRuntime).rules
    body = (await client.get(f"/v1/venues/{venue.id}/slots")).json()
    assert body["rules"] == {
        "max_party": rules.max_party,
        "booking_opens_days": rules.booking_opens_days,
        "one_booking_per_day": True,
        "cancel_until_start": True,
    }


async def test_the_endpoint_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/residents/me/reservations"]["get"]
    assert operation["security"] == [{"bearer": []}]
    assert "200" in operation["responses"] and "401" in operation["responses"]
