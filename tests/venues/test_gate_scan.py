"""POST /v1/gates/scan: the decision, its record, idempotency, occupancy under concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import assert_problem, code_of, relogin, resident
from tests.venues.helpers import book, make_gate, make_slot, make_venue, scan, scan_id, warm_kv


async def test_admit_then_already_inside_then_exit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    gate = await make_gate(client, venue)
    ann = await resident(client, ctx)
    first = await scan(client, gate, await code_of(client, ann))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["decision"], body["reason"], body["occupancy"]) == ("admit", "ok", 1)
    assert body["display"] == {"masked_name": "张*明", "status": "green"}
    again = await scan(client, gate, await code_of(client, ann))
    assert (again.json()["decision"], again.json()["reason"]) == ("deny", "already_inside")
    out = await scan(client, gate, await code_of(client, ann), "out")
    assert (out.json()["decision"], out.json()["occupancy"]) == ("admit", 0)
    twice_out = await scan(client, gate, await code_of(client, ann), "out")
    assert twice_out.json()["occupancy"] == 0, "occupancy never goes negative"
    occupancy = await client.get(f"/v1/venues/{venue.id}/occupancy", headers=venue.operator.headers)
    assert occupancy.json() == {"venue_id": venue.id, "occupancy": 0, "capacity": 5, "available": 5}


async def test_same_scan_id_same_answer_other_body_422(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    bo = await resident(client, ctx)
    code = await code_of(client, bo)
    sid = scan_id()
    first = await scan(client, gate, code, sid=sid)
    repeat = await scan(client, gate, code, sid=sid)
    assert repeat.status_code == 200 and repeat.json() == first.json()
    other = await scan(client, gate, await code_of(client, bo), sid=sid)
    assert_problem(other, 422, "idempotency_key_reused")
    entries = await client.get(f"/v1/venues/{venue.id}/entries", headers=venue.operator.headers)
    assert len(entries.json()["items"]) == 1


async def test_concurrent_duplicates_of_one_scan_admit_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    code = await code_of(client, await resident(client, ctx))
    sid = scan_id()
    answers = await asyncio.gather(*(scan(client, gate, code, sid=sid) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert all(a.json() == answers[0].json() for a in answers)
    assert answers[0].json()["occupancy"] == 1


async def test_same_code_at_another_gate_is_replayed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    east, west = await make_gate(client, venue), await make_gate(client, venue)
    code = await code_of(client, await resident(client, ctx))
    assert (await scan(client, east, code)).json()["decision"] == "admit"
    replay = await scan(client, west, code)
    assert (replay.json()["decision"], replay.json()["reason"]) == ("deny", "code_replayed")


async def test_bad_scans_get_their_problem(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue, direction="in")
    code = await code_of(client, await resident(client, ctx))
    skewed = await scan(
        client, gate, code, scanned_at=(clock.now() - timedelta(minutes=10)).isoformat()
    )
    assert_problem(skewed, 422, "clock_skewed")
    exit_here = await scan(client, gate, code, "out")
    assert_problem(exit_here, 422, "direction_not_supported")
    malformed = await client.post(
        "/v1/gates/scan", json={"scan_id": "x", "direction": "up"}, headers=gate.headers
    )
    assert_problem(malformed, 422, "validation_failed")
    garbage = await scan(client, gate, "SC1:not-a-code")
    assert (garbage.json()["decision"], garbage.json()["reason"]) == ("deny", "code_malformed")
    anonymous = await client.post(
        "/v1/gates/scan", json={"scan_id": "x", "code": code, "direction": "in"}
    )
    assert anonymous.status_code == 401
    operator = await client.post(
        "/v1/gates/scan", json={"scan_id": "x", "code": code, "direction": "in"},
        headers=venue.operator.headers,
    )  # fmt: skip
    assert operator.status_code == 403


async def test_status_colour_and_reservation_policy(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, reservation_required=True)
    gate = await make_gate(client, venue)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=40))
    holder, walker, yellow = [await resident(client, ctx) for _ in range(3)]
    assert (await book(client, holder, slot["id"])).status_code == 201
    authority = await machine_authority(client, ctx)
    set_status = await client.put(
        f"/v1/health-status/{yellow.subject_id}",
        json={"status": "yellow", "reason": "test", "valid_until": None},
        headers=authority,
    )
    assert set_status.status_code == 200, set_status.text
    early = await scan(client, gate, await code_of(client, holder))
    assert early.json()["reason"] == "reservation_required", "more than 30 min before the slot"
    clock.advance(minutes=11)
    holder = await relogin(client, holder)
    on_time = await scan(client, gate, await code_of(client, holder))
    assert on_time.json()["decision"] == "admit"
    walker = await relogin(client, walker)
    no_booking = await scan(client, gate, await code_of(client, walker))
    assert no_booking.json()["reason"] == "reservation_required"
    yellow = await relogin(client, yellow)
    colour = await scan(client, gate, await code_of(client, yellow))
    assert (colour.json()["reason"], colour.json()["display"]["status"]) == (
        "status_not_allowed",
        "yellow",
    )


async def machine_authority(client: httpx.AsyncClient, ctx: AppContext) -> dict[str, str]:
    from tests.factories import machine

    return (await machine(client, ctx, "authority")).headers


async def test_full_venue_denies_until_someone_leaves(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=1)
    gate = await make_gate(client, venue)
    first, second = await resident(client, ctx), await resident(client, ctx)
    assert (await scan(client, gate, await code_of(client, first))).json()["decision"] == "admit"
    full = await scan(client, gate, await code_of(client, second))
    assert (full.json()["decision"], full.json()["reason"]) == ("deny", "venue_full")
    await scan(client, gate, await code_of(client, first), "out")
    assert (await scan(client, gate, await code_of(client, second))).json()["decision"] == "admit"


@pytest.mark.cluster
async def test_occupancy_never_exceeds_capacity_under_concurrent_scans_at_several_gates(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=10)
    gates = [await make_gate(client, venue) for _ in range(4)]
    people = []
    for _ in range(4):
        people += await asyncio.gather(*(resident(client, ctx) for _ in range(10)))
    codes = [await code_of(client, p) for p in people]
    await warm_kv(ctx, 100)
    answers = await asyncio.gather(
        *(scan(client, gates[i % 4], code) for i, code in enumerate(codes))
    )
    decisions = [a.json()["decision"] for a in answers]
    assert decisions.count("admit") == 10
    assert {a.json()["reason"] for a in answers if a.json()["decision"] == "deny"} == {"venue_full"}
    assert max(a.json()["occupancy"] for a in answers) == 10
    admitted = [c for c, d in zip(codes, decisions, strict=True) if d == "admit"]
    fresh = [
        await code_of(client, p) for p, d in zip(people, decisions, strict=True) if d == "admit"
    ]
    exits = await asyncio.gather(
        *(scan(client, gates[i % 4], c, "out") for i, c in enumerate(fresh + fresh))
    )
    assert len(admitted) == 10
    assert min(e.json()["occupancy"] for e in exits) == 0
    occupancy = await client.get(f"/v1/venues/{venue.id}/occupancy", headers=venue.operator.headers)
    assert occupancy.json()["occupancy"] == 0


async def test_annul_undoes_an_admit_within_60_seconds(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate, other_gate = await make_gate(client, venue), await make_gate(client, venue)
    cy = await resident(client, ctx)
    code = await code_of(client, cy)
    sid = scan_id()
    assert (await scan(client, gate, code, sid=sid)).json()["occupancy"] == 1
    elsewhere = await client.post(f"/v1/gates/scan/{sid}/annul", headers=other_gate.headers)
    assert_problem(elsewhere, 404, "scan_not_found")
    annulled = await client.post(f"/v1/gates/scan/{sid}/annul", headers=gate.headers)
    assert annulled.status_code == 200 and annulled.json()["occupancy"] == 0
    again = await client.post(f"/v1/gates/scan/{sid}/annul", headers=gate.headers)
    assert again.json() == annulled.json()
    retry = await scan(client, gate, code)
    assert retry.json()["decision"] == "admit", "the same gate may present the code again"
    late_sid = scan_id()
    await scan(client, gate, await code_of(client, await resident(client, ctx)), sid=late_sid)
    clock.advance(seconds=61)
    late = await client.post(f"/v1/gates/scan/{late_sid}/annul", headers=gate.headers)
    assert_problem(late, 409, "annul_window_passed")


async def test_entries_are_paginated_and_filtered_for_the_operator(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    east, west = await make_gate(client, venue), await make_gate(client, venue)
    for i in range(5):
        await scan(
            client, east if i % 2 == 0 else west, await code_of(client, await resident(client, ctx))
        )
    h = venue.operator.headers
    page = (await client.get(f"/v1/venues/{venue.id}/entries?limit=2", headers=h)).json()
    assert len(page["items"]) == 2 and page["next_cursor"] is not None
    rest = (
        await client.get(
            f"/v1/venues/{venue.id}/entries?limit=10&cursor={page['next_cursor']}", headers=h
        )
    ).json()
    assert len(rest["items"]) == 3 and rest["next_cursor"] is None
    ids = [e["id"] for e in page["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    only_west = (
        await client.get(f"/v1/venues/{venue.id}/entries", params={"gate_id": west.id}, headers=h)
    ).json()
    assert {e["gate_id"] for e in only_west["items"]} == {west.id} and len(only_west["items"]) == 2
    future = (clock.now() + timedelta(minutes=1)).isoformat()
    none = (
        await client.get(f"/v1/venues/{venue.id}/entries", params={"since": future}, headers=h)
    ).json()
    assert none["items"] == []
    assert all(e["masked_name"] == "张*明" for e in page["items"])


async def test_another_venues_gate_cannot_see_or_annul_scans(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mine, theirs = await make_venue(client, ctx), await make_venue(client, ctx)
    my_gate, their_gate = await make_gate(client, mine), await make_gate(client, theirs)
    sid = scan_id()
    await scan(client, my_gate, await code_of(client, await resident(client, ctx)), sid=sid)
    assert (
        await client.post(f"/v1/gates/scan/{sid}/annul", headers=their_gate.headers)
    ).status_code == 404
    for path in (f"/v1/venues/{mine.id}/entries", f"/v1/venues/{mine.id}/occupancy"):
        assert (await client.get(path, headers=their_gate.headers)).status_code == 403
        assert (await client.get(path, headers=theirs.operator.headers)).status_code == 403
    bundle = (await client.get("/v1/gates/bundle", headers=their_gate.headers)).json()
    assert bundle["document"]["venue_id"] == theirs.id


async def test_one_person_at_two_gates_at_once_is_admitted_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gates = [await make_gate(client, venue) for _ in range(6)]
    jo = await resident(client, ctx)
    codes = [await code_of(client, jo) for _ in gates]  # each gate its own fresh code
    answers = await asyncio.gather(*(scan(client, g, c) for g, c in zip(gates, codes, strict=True)))
    reasons = sorted(a.json()["reason"] for a in answers)
    assert reasons == ["already_inside"] * 5 + ["ok"]
    assert {a.json()["occupancy"] for a in answers} == {1}
