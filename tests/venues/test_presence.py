"""Presence across online and offline gates: synced scans mark people inside and outside,
occupancy always equals the people inside, sync refuses scan times it cannot trust."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from codes import codec
from codes.pseudonym import DAY_OFFSET_S, day_of
from tests.factories import Resident, assert_problem, code_of, resident
from tests.venues.helpers import (
    Gate,
    VenueKit,
    conflicts_of,
    make_gate,
    make_venue,
    occupancy,
    offline,
    scan,
    sync,
)


async def test_one_person_admitted_offline_at_two_gates_counts_once_and_is_inside(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    east, west, online = [await make_gate(client, venue) for _ in range(3)]
    local_east, local_west = await offline(client, east, clock), await offline(client, west, clock)
    jo = await resident(client, ctx)
    at_east = local_east.decide(await code_of(client, jo), "in", clock.now())
    at_west = local_west.decide(await code_of(client, jo), "in", clock.now())
    assert at_east.decision == at_west.decision == "admit", "neither gate could know"
    first = await sync(client, east, [at_east.as_json()])
    assert (first["recorded"], first["conflicts"], first["occupancy"]) == (1, [], 1)
    second = await sync(client, west, [at_west.as_json()])
    assert conflicts_of(second) == {at_west.scan_id: {"already_inside"}}
    assert (second["recorded"], second["occupancy"]) == (1, 1), "stored, not counted twice"
    again = (await scan(client, online, await code_of(client, jo))).json()
    assert (again["decision"], again["reason"]) == ("deny", "already_inside")
    assert await occupancy(client, venue) == 1


async def test_one_code_admitted_offline_at_two_gates_counts_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5, anti_passback=False)
    east, west = await make_gate(client, venue), await make_gate(client, venue)
    local_east, local_west = await offline(client, east, clock), await offline(client, west, clock)
    code = await code_of(client, await resident(client, ctx))
    scans = [local_east.decide(code, "in", clock.now()), local_west.decide(code, "in", clock.now())]
    assert (await sync(client, east, [scans[0].as_json()]))["occupancy"] == 1
    second = await sync(client, west, [scans[1].as_json()])
    assert conflicts_of(second) == {scans[1].scan_id: {"code_admitted_elsewhere", "already_inside"}}
    assert second["occupancy"] == 1


async def test_an_offline_exit_after_a_synced_admission_releases_presence(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    east, west, online = [await make_gate(client, venue) for _ in range(3)]
    local_east, local_west = await offline(client, east, clock), await offline(client, west, clock)
    jo = await resident(client, ctx)
    entered = local_east.decide(await code_of(client, jo), "in", clock.now())
    assert (await sync(client, east, [entered.as_json()]))["occupancy"] == 1
    clock.advance(minutes=2)
    left = local_west.decide(await code_of(client, jo), "out", clock.now())
    assert (await sync(client, west, [left.as_json()]))["occupancy"] == 0
    back = (await scan(client, online, await code_of(client, jo))).json()
    assert (back["decision"], back["occupancy"]) == ("admit", 1)


async def test_a_synced_admission_older_than_a_recorded_exit_does_not_put_them_back_inside(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    east, online = await make_gate(client, venue), await make_gate(client, venue)
    local_east = await offline(client, east, clock)
    jo = await resident(client, ctx)
    entered = local_east.decide(await code_of(client, jo), "in", clock.now())
    clock.advance(minutes=2)
    out = (await scan(client, online, await code_of(client, jo), "out")).json()
    assert (out["decision"], out["occupancy"]) == ("admit", 0), "never seen entering"
    synced = await sync(client, east, [entered.as_json()])
    assert (synced["recorded"], synced["conflicts"], synced["occupancy"]) == (1, [], 0)
    back = (await scan(client, online, await code_of(client, jo))).json()
    assert (back["decision"], back["occupancy"]) == ("admit", 1), "they are outside"


async def test_a_code_of_the_next_day_synced_while_they_are_inside_counts_them_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    # Codes name a different daily pseudonym each day: presence must key the subject.
    now_s = int(clock.now().timestamp())
    clock.advance(seconds=86400 - (now_s + DAY_OFFSET_S) % 86400 - 180)  # 3 min to midnight
    venue = await make_venue(client, ctx, capacity=5)
    hall, east = await make_gate(client, venue), await make_gate(client, venue)
    local_east = await offline(client, east, clock)
    jo = await resident(client, ctx)
    first_code = await code_of(client, jo)
    assert (await scan(client, hall, first_code)).json()["decision"] == "admit"
    clock.advance(minutes=5)  # past midnight (UTC+8): today's codes open to another pseudonym
    next_code = await code_of(client, jo)
    issued = [codec.decode(c).payload.issued_at for c in (first_code, next_code)]
    assert day_of(issued[1]) == day_of(issued[0]) + 1
    unaware = local_east.decide(next_code, "in", clock.now())
    assert unaware.decision == "admit", "east never saw jo enter"
    synced = await sync(client, east, [unaware.as_json()])
    assert conflicts_of(synced) == {unaware.scan_id: {"already_inside"}}
    assert (synced["recorded"], synced["occupancy"]) == (1, 1), "not counted twice"
    out = (await scan(client, hall, await code_of(client, jo), "out")).json()
    assert (out["decision"], out["occupancy"]) == ("admit", 0), "one person, one place"


def _raw(sid: str, code: str, at: datetime, decision: str = "admit") -> dict[str, Any]:
    return {"scan_id": sid, "code": code, "direction": "in", "scanned_at": at.isoformat(),
            "decision": decision, "reason": "ok"}  # fmt: skip


async def test_sync_refuses_scan_times_outside_the_bundle_window_and_the_gate_clock(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5, anti_passback=False)
    gate = await make_gate(client, venue)
    now = clock.now()
    codes = [await code_of(client, await resident(client, ctx)) for _ in range(4)]
    scans = [
        _raw("old", codes[0], now - timedelta(hours=25)),
        _raw("future", codes[1], now + timedelta(minutes=10)),
        _raw("ahead-of-gate", codes[2], now + timedelta(seconds=90)),
        _raw("good", codes[3], now),
    ]
    # The gate's clock is a minute behind: its scans after its own time + 120 s are refused.
    result = await sync(client, gate, scans, gate_time=(now - timedelta(minutes=1)).isoformat())
    outcomes = {r["scan_id"]: (r["outcome"], r.get("reason")) for r in result["results"]}
    assert outcomes == {
        "old": ("rejected", "scanned_before_bundle_window"),
        "future": ("rejected", "scanned_in_future"),
        "ahead-of-gate": ("rejected", "scanned_after_gate_time"),
        "good": ("recorded", None),
    }
    assert (result["recorded"], result["duplicates"], result["rejected"]) == (1, 0, 3)
    assert result["occupancy"] == 1, "a rejected scan is never counted"
    entries = await client.get(f"/v1/venues/{venue.id}/entries", headers=venue.operator.headers)
    assert [e["scan_id"] for e in entries.json()["items"]] == ["good"]
    naive = await client.post(
        "/v1/gates/sync", json={"scans": scans[3:], "gate_time": "2026-01-01T00:00:00"},
        headers=gate.headers,
    )  # fmt: skip
    assert_problem(naive, 422, "validation_failed")


async def test_recorded_counts_every_scan_stored_by_the_upload(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=1)
    gate = await make_gate(client, venue)
    local = await offline(client, gate, clock)
    people = [await resident(client, ctx) for _ in range(2)]
    scans = [local.decide(await code_of(client, p), "in", clock.now()) for p in people]
    overrun = dict(scans[1].as_json(), decision="admit", reason="ok")  # the gate let them in
    result = await sync(client, gate, [scans[0].as_json(), overrun])
    assert conflicts_of(result) == {scans[1].scan_id: {"capacity_overrun"}}
    assert (result["recorded"], result["duplicates"], result["rejected"]) == (2, 0, 0)
    reused = dict(scans[0].as_json(), direction="out")
    again = await sync(client, gate, [scans[0].as_json(), reused | {"scan_id": "x"}, overrun])
    assert (again["recorded"], again["duplicates"], again["rejected"]) == (1, 2, 0)
    clash = await sync(client, gate, [dict(scans[0].as_json(), direction="out")])
    assert clash["results"] == [{"scan_id": scans[0].scan_id, "outcome": "rejected",
                                 "conflicts": [], "reason": "scan_id_reused"}]  # fmt: skip
    assert (clash["recorded"], clash["rejected"], clash["occupancy"]) == (0, 1, 0)


class _Venue:
    """The venue as the test sees it: who is inside, checked against the occupancy."""

    def __init__(self, client: httpx.AsyncClient, venue: VenueKit) -> None:
        self.client, self.venue, self.inside = client, venue, set[str]()

    async def check(self, step: str) -> None:
        got = await occupancy(self.client, self.venue)
        assert got == len(self.inside), f"{step}: occupancy {got}, inside {sorted(self.inside)}"


async def _online(
    client: httpx.AsyncClient, gate: Gate, person: Resident, direction: str = "in"
) -> dict[str, Any]:
    answer = await scan(client, gate, await code_of(client, person), direction)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_occupancy_equals_the_people_inside_across_online_and_offline_gates(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    kit = await make_venue(client, ctx, capacity=3)
    venue = _Venue(client, kit)
    hall, east, west = [await make_gate(client, kit) for _ in range(3)]
    local_east, local_west = await offline(client, east, clock), await offline(client, west, clock)
    ann, bo, cy, dee = [await resident(client, ctx) for _ in range(4)]
    assert (await _online(client, hall, ann))["decision"] == "admit"
    venue.inside.add("ann")
    await venue.check("ann enters online")
    assert (await _online(client, hall, bo))["decision"] == "admit"
    venue.inside.add("bo")
    await venue.check("bo enters online")
    clock.advance(minutes=1)
    left = local_east.decide(await code_of(client, ann), "out", clock.now())
    await sync(client, east, [left.as_json()])
    venue.inside.discard("ann")
    await venue.check("ann leaves offline at east, synced")
    clock.advance(minutes=1)
    back = local_west.decide(await code_of(client, ann), "in", clock.now())
    assert back.decision == "admit"
    await sync(client, west, [back.as_json()])
    venue.inside.add("ann")
    await venue.check("ann enters offline at west, synced")
    cy_code = await code_of(client, cy)
    assert (await scan(client, hall, cy_code)).json()["decision"] == "admit"
    venue.inside.add("cy")
    await venue.check("cy enters online")
    assert (await scan(client, hall, cy_code)).json()["repeat_of"] is not None
    await venue.check("cy's code presented again")
    assert (await _online(client, hall, dee, "out"))["decision"] == "admit"
    await venue.check("dee, never seen, leaves")
    assert (await _online(client, hall, dee))["reason"] == "venue_full"
    await venue.check("dee refused: full")
    assert (await _online(client, hall, ann, "out"))["decision"] == "admit"
    venue.inside.discard("ann")
    await venue.check("ann leaves online")
    await sync(client, east, [left.as_json()])
    await venue.check("east syncs again (duplicate)")
    cy_out = local_west.decide(await code_of(client, cy), "out", clock.now())
    await sync(client, west, [cy_out.as_json()])
    venue.inside.discard("cy")
    await venue.check("cy leaves offline at west, synced")
    assert (await _online(client, hall, dee))["decision"] == "admit"
    venue.inside.add("dee")
    await venue.check("dee enters online")
    unaware = local_east.decide(await code_of(client, dee), "in", clock.now())
    assert unaware.decision == "admit", "east's bundle predates dee's entry"
    assert conflicts_of(await sync(client, east, [unaware.as_json()])) == {
        unaware.scan_id: {"already_inside"}
    }
    await venue.check("dee admitted offline again at east, synced: already inside")
