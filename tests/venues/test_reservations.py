"""Slots and bookings: the rules residents expect, and never overbooked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import add_dependent, assert_problem, code_of, relogin, resident
from tests.venues.helpers import book, local_time, make_gate, make_slot, make_venue, scan, warm_kv
from venues import tasks
from venues.config import VenueRules
from venues.models import NoShow


async def test_booking_takes_places_and_cancelling_gives_them_back(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    slot = await make_slot(client, venue, clock.now() + timedelta(days=1), capacity=10, walk_in=2)
    assert slot["available"] == 8
    alice = await resident(client, ctx)
    kid = await add_dependent(client, alice)
    booked = await book(client, alice, slot["id"], [kid])
    assert booked.status_code == 201, booked.text
    assert booked.json()["party_size"] == 2
    slots = (await client.get(f"/v1/venues/{venue.id}/slots")).json()["items"]
    assert slots[0]["booked"] == 2 and slots[0]["available"] == 6
    cancelled = await client.delete(
        f"/v1/reservations/{booked.json()['id']}", headers=alice.headers
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    slots = (await client.get(f"/v1/venues/{venue.id}/slots")).json()["items"]
    assert slots[0]["booked"] == 0
    again = await book(client, alice, slot["id"])
    assert again.status_code == 201, "cancelling frees the person for that day"


async def test_full_slot_answers_slot_full(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    slot = await make_slot(client, venue, clock.now() + timedelta(hours=3), capacity=2, walk_in=1)
    assert (await book(client, await resident(client, ctx), slot["id"])).status_code == 201
    full = await book(client, await resident(client, ctx), slot["id"])
    assert_problem(full, 409, "slot_full")


async def test_one_booking_per_person_per_venue_per_day(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    start = local_time(clock.now(), days=2, hour=9)
    morning = await make_slot(client, venue, start)
    later = await make_slot(client, venue, start + timedelta(hours=2))
    bob = await resident(client, ctx)
    assert (await book(client, bob, morning["id"])).status_code == 201
    twice = await book(client, bob, later["id"])
    assert_problem(twice, 409, "already_booked")
    slots = {s["id"]: s for s in (await client.get(f"/v1/venues/{venue.id}/slots")).json()["items"]}
    assert slots[later["id"]]["booked"] == 0, "the refused booking took no place"


async def test_booking_rules_party_window_past_unknown(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    carol = await resident(client, ctx)
    far = await make_slot(client, venue, clock.now() + timedelta(days=8))
    too_early = await book(client, carol, far["id"])
    assert_problem(too_early, 422, "booking_not_open")
    soon = await make_slot(client, venue, clock.now() + timedelta(minutes=10))
    kids = [await add_dependent(client, carol) for _ in range(5)]
    big = await book(client, carol, soon["id"], kids)
    assert_problem(big, 422, "party_too_large")
    unknown = await book(client, carol, "slot_missing")
    assert_problem(unknown, 404, "slot_not_found")
    clock.advance(hours=2)
    carol = await relogin(client, carol)
    past = await book(client, carol, soon["id"])
    assert_problem(past, 422, "slot_in_past")
    stranger = await book(client, carol, far["id"], ["subj_not_mine"])
    assert stranger.status_code == 404
    no_identity = await resident(client, ctx, identity=False)
    refused = await book(client, no_identity, far["id"])
    assert_problem(refused, 409, "identity_required")


async def test_cancellation_closes_when_the_slot_starts(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=5))
    dan = await resident(client, ctx)
    booked = (await book(client, dan, slot["id"])).json()
    other = await resident(client, ctx)
    assert (
        await client.delete(f"/v1/reservations/{booked['id']}", headers=other.headers)
    ).status_code == 404
    clock.advance(minutes=5)
    late = await client.delete(f"/v1/reservations/{booked['id']}", headers=dan.headers)
    assert_problem(late, 409, "cancellation_closed")


async def test_three_no_shows_suspend_booking(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    erin = await resident(client, ctx)
    t0 = clock.now()
    slots = [
        await make_slot(client, venue, t0 + timedelta(days=d, hours=1)) for d in (0, 1, 2, 3, 34)
    ]
    for day in range(3):
        clock.set(t0 + timedelta(days=day))
        erin = await relogin(client, erin)
        assert (await book(client, erin, slots[day]["id"])).status_code == 201
        clock.set(t0 + timedelta(days=day, hours=2, minutes=1))
        assert await tasks.count_no_shows(ctx) == 1
        assert await tasks.count_no_shows(ctx) == 0, "a slot is counted once"
    clock.set(t0 + timedelta(days=3))
    erin = await relogin(client, erin)
    refused = await book(client, erin, slots[3]["id"])
    assert_problem(refused, 403, "booking_suspended")
    clock.set(t0 + timedelta(days=20))
    erin = await relogin(client, erin)  # a refresh token lives 30 days
    clock.set(t0 + timedelta(days=33))
    erin = await relogin(client, erin)
    assert (await book(client, erin, slots[4]["id"])).status_code == 201


async def test_200_concurrent_bookings_for_50_places_leave_exactly_50(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=1000)
    slot = await make_slot(client, venue, clock.now() + timedelta(days=1), capacity=60, walk_in=10)
    await warm_kv(ctx, 250)
    people = []
    for _ in range(20):  # setup in small batches: the concurrency under test is the booking
        people += await asyncio.gather(*(resident(client, ctx) for _ in range(10)))
    answers = await asyncio.gather(*(book(client, p, slot["id"]) for p in people))
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 50, sorted(set(codes))
    assert codes.count(409) == 150, [a.text for a in answers if a.status_code not in (201, 409)][:3]
    for a in answers:
        if a.status_code == 409:
            assert_problem(a, 409, "slot_full")
    listed = (await client.get(f"/v1/venues/{venue.id}/slots")).json()["items"][0]
    assert listed["booked"] == 50 and listed["available"] == 0
    from venues.models import Seat

    assert await Seat.filter(reservation__slot_id=slot["id"]).count() == 50


async def test_slots_are_validated_and_listed_by_local_day(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    start = local_time(clock.now(), days=3, hour=10)
    h = venue.operator.headers
    for body in (
        {"starts_at": start.isoformat(), "ends_at": start.isoformat(), "capacity": 5},
        {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
         "capacity": 5, "walk_in": 6},
        {"starts_at": (clock.now() - timedelta(hours=2)).isoformat(),
         "ends_at": (clock.now() - timedelta(hours=1)).isoformat(), "capacity": 5},
    ):  # fmt: skip
        bad = await client.post(f"/v1/venues/{venue.id}/slots", json=body, headers=h)
        assert_problem(bad, 422, "slot_invalid")
    await make_slot(client, venue, start)
    await make_slot(client, venue, local_time(clock.now(), days=4, hour=10))
    day = (await client.get(f"/v1/venues/{venue.id}/slots", params={"day": start.astimezone(
        VenueRules().tz).date().isoformat()})).json()["items"]  # fmt: skip
    assert [s["starts_at"] for s in day] == [start.isoformat().replace("+00:00", "Z")]
    unknown = await client.get("/v1/venues/ven_missing/slots")
    assert_problem(unknown, 404, "venue_not_found")


async def test_a_booking_used_at_a_venue_without_reservation_check_is_no_no_show(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)  # reservations not required at the gate
    gate = await make_gate(client, venue)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=10))
    came, stayed_home = await resident(client, ctx), await resident(client, ctx)
    for person in (came, stayed_home):
        assert (await book(client, person, slot["id"])).status_code == 201
    assert (await scan(client, gate, await code_of(client, came))).json()["decision"] == "admit"
    clock.advance(hours=1, minutes=11)
    assert await tasks.count_no_shows(ctx) == 1
    no_shows: list[str] = await NoShow.all().values_list("subject_id", flat=True)  # type: ignore[assignment]
    assert no_shows == [stayed_home.subject_id]
