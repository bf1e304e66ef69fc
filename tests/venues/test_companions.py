"""Companions (同行人员) at the online gate: one scan of the guardian's code for the party,
one decision, entry and count per person, capacity for the whole party or for nobody."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import Resident, add_dependent, assert_problem, code_of, resident
from tests.venues.helpers import (
    VenueKit,
    book,
    make_gate,
    make_slot,
    make_venue,
    occupancy,
    scan,
    scan_id,
    set_status,
    warm_kv,
)
from venues.models import Entry


async def guardian_with(
    client: httpx.AsyncClient, ctx: AppContext, children: int = 2
) -> tuple[Resident, list[str]]:
    person = await resident(client, ctx)
    kids = [
        await add_dependent(client, person, name=f"张小{n}", birth=date(2015, 1, 1 + i))
        for i, n in enumerate("明红刚"[:children])
    ]
    return person, kids


async def booked_party(
    client: httpx.AsyncClient, ctx: AppContext, venue: VenueKit, clock: FrozenClock
) -> tuple[Resident, list[str], dict[str, Any]]:
    slot = await make_slot(client, venue, clock.now() - timedelta(minutes=5), capacity=30)
    person, kids = await guardian_with(client, ctx)
    booked = await book(client, person, slot["id"], kids)
    assert booked.status_code == 201, booked.text
    return person, kids, slot


def decisions(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(body["decision"], body["reason"])] + [
        (c["decision"], c["reason"]) for c in body["companions"]
    ]


async def test_a_party_of_three_with_one_place_left_admits_nobody(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=3)
    gate = await make_gate(client, venue)
    fillers = [await resident(client, ctx) for _ in range(2)]
    for filler in fillers:
        code = await code_of(client, filler)
        assert (await scan(client, gate, code)).json()["decision"] == "admit"
    person, _, _ = await booked_party(client, ctx, venue, clock)
    sid = scan_id()
    answer = await scan(
        client, gate, await code_of(client, person), sid=sid, companions="reservation"
    )
    body = answer.json()
    assert decisions(body) == [("deny", "venue_full")] * 3
    assert body["occupancy"] == 2 and await occupancy(client, venue) == 2
    # Each person was decided and recorded on their own.
    party = await Entry.filter(gate_id=gate.id, scan_id__startswith=sid).order_by("scan_id")
    assert [e.scan_id for e in party] == [sid, f"{sid}#1", f"{sid}#2"]
    assert {(e.decision, e.reason, e.counted) for e in party} == {("deny", "venue_full", False)}
    # The guardian's code was not consumed by the refusal: with room, the party enters.
    for filler in fillers:
        await scan(client, gate, await code_of(client, filler), "out")
    assert await occupancy(client, venue) == 0
    second = (
        await scan(client, gate, await code_of(client, person), companions="reservation")
    ).json()
    assert decisions(second) == [("admit", "ok")] * 3 and second["occupancy"] == 3


async def test_companions_on_the_reservation_enter_and_leave_each_counted(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=10, reservation_required=True)
    gate = await make_gate(client, venue)
    person, kids, _ = await booked_party(client, ctx, venue, clock)
    code = await code_of(client, person)
    sid = scan_id()
    body = (await scan(client, gate, code, sid=sid, companions="reservation")).json()
    assert decisions(body) == [("admit", "ok")] * 3
    assert body["occupancy"] == 3
    assert [c["scan_id"] for c in body["companions"]] == [f"{sid}#1", f"{sid}#2"]
    assert all(c["display"]["status"] == "green" for c in body["companions"])
    assert all(c["display"]["masked_name"].startswith("张") for c in body["companions"])
    refs = {d["dependent_ref"] for d in body["dependents"]}
    assert {c["dependent_ref"] for c in body["companions"]} == refs and len(refs) == 2
    assert not any(kid in str(body) for kid in kids), "the gate is not told who people are"
    # The same scan again: the same answer, companions included; nothing counted twice.
    replay = (await scan(client, gate, code, sid=sid, companions="reservation")).json()
    assert replay == body and await occupancy(client, venue) == 3
    counted = await Entry.filter(gate_id=gate.id, counted=True).count()
    assert counted == 3
    out = (
        await scan(client, gate, await code_of(client, person), "out", companions="reservation")
    ).json()
    assert decisions(out) == [("admit", "ok")] * 3 and out["occupancy"] == 0
    # Leaving twice takes nobody off the count again.
    twice = (
        await scan(client, gate, await code_of(client, person), "out", companions="reservation")
    ).json()
    assert twice["occupancy"] == 0 and await occupancy(client, venue) == 0


async def test_companions_chosen_at_the_gate_by_their_ref(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=10)
    gate = await make_gate(client, venue)
    person, kids = await guardian_with(client, ctx, children=3)
    code = await code_of(client, person)
    # No reservation: the guardian enters alone, and the gate sees whom they may bring.
    alone = (await scan(client, gate, code, companions="reservation")).json()
    assert decisions(alone) == [("admit", "ok")] and alone["occupancy"] == 1
    refs = [d["dependent_ref"] for d in alone["dependents"]]
    assert len(refs) == 3 and all(d["masked_name"] for d in alone["dependents"])
    # Two chosen, one unknown name: the guardian's admission repeats, the two are counted.
    chosen = (await scan(client, gate, code, companions=[refs[0], refs[2], "d-not-theirs"])).json()
    assert chosen["repeat_of"] == alone["scan_id"]
    assert decisions(chosen) == [
        ("admit", "ok"), ("admit", "ok"), ("admit", "ok"), ("deny", "not_a_dependent"),
    ]  # fmt: skip
    assert chosen["occupancy"] == 3
    # A companion inside already is refused under anti-passback, and not counted.
    again = (await scan(client, gate, code, companions=[refs[0], refs[1]])).json()
    assert decisions(again)[1:] == [("deny", "already_inside"), ("admit", "ok")]
    assert again["occupancy"] == 4
    # The app's dependent_id names a dependent too; the party limit holds at the gate.
    stranger = await resident(client, ctx)
    too_many = await scan(
        client, gate, await code_of(client, stranger), companions=[f"d{n}" for n in range(5)]
    )
    assert_problem(too_many, 422, "party_too_large")
    assert kids


async def test_a_red_guardian_brings_nobody_and_a_red_child_stays_out(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=10)
    gate = await make_gate(client, venue)
    person, kids, _ = await booked_party(client, ctx, venue, clock)
    await set_status(client, ctx, kids[0], "red")
    body = (
        await scan(client, gate, await code_of(client, person), companions="reservation")
    ).json()
    by_status = {c["display"]["status"]: (c["decision"], c["reason"]) for c in body["companions"]}
    assert by_status == {"red": ("deny", "status_not_allowed"), "green": ("admit", "ok")}
    assert body["occupancy"] == 2
    other, _, _ = await booked_party(client, ctx, venue, clock)
    await set_status(client, ctx, other.subject_id, "red")
    refused = (
        await scan(client, gate, await code_of(client, other), companions="reservation")
    ).json()
    assert decisions(refused) == [("deny", "status_not_allowed")] + [("deny", "holder_refused")] * 2
    assert refused["occupancy"] == 2


async def test_annulling_the_guardians_scan_annuls_the_party(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=10)
    gate = await make_gate(client, venue)
    person, _, _ = await booked_party(client, ctx, venue, clock)
    sid = scan_id()
    body = (
        await scan(client, gate, await code_of(client, person), sid=sid, companions="reservation")
    ).json()
    assert body["occupancy"] == 3
    annulled = await client.post(f"/v1/gates/scan/{sid}/annul", headers=gate.headers)
    assert annulled.status_code == 200, annulled.text
    assert annulled.json()["occupancy"] == 0
    party = await Entry.filter(gate_id=gate.id, scan_id__startswith=sid)
    assert len(party) == 3 and all(e.annulled_at is not None for e in party)
    # The code admits again, with its party.
    again = (
        await scan(client, gate, await code_of(client, person), companions="reservation")
    ).json()
    assert decisions(again) == [("admit", "ok")] * 3 and again["occupancy"] == 3


async def test_concurrent_party_scans_never_exceed_capacity(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    """Twelve guardians with two children each scan at four gates at once for 10 places:
    whole parties only (three of them), occupancy exactly the people counted."""
    venue = await make_venue(client, ctx, capacity=10)
    gates = [await make_gate(client, venue) for _ in range(4)]
    slot = await make_slot(client, venue, clock.now() - timedelta(minutes=5), capacity=60)
    parties = [await guardian_with(client, ctx) for _ in range(12)]
    for person, kids in parties:
        assert (await book(client, person, slot["id"], kids)).status_code == 201
    codes = [await code_of(client, person) for person, _ in parties]
    await warm_kv(ctx, 100)
    answers = await asyncio.gather(
        *(
            scan(client, gates[i % 4], code, companions="reservation")
            for i, code in enumerate(codes)
        )
    )
    bodies = [a.json() for a in answers]
    outcomes = [set(decisions(b)) for b in bodies]
    assert all(o in ({("admit", "ok")}, {("deny", "venue_full")}) for o in outcomes), outcomes
    admitted = [b for b, o in zip(bodies, outcomes, strict=True) if o == {("admit", "ok")}]
    assert len(admitted) == 3
    assert await occupancy(client, venue) == 9
    assert await Entry.filter(venue_id=venue.id, counted=True).count() == 9
    # The admitted parties leave at once, each twice: occupancy back to zero, never below.
    leaving = [
        await code_of(client, person)
        for (person, _), o in zip(parties, outcomes, strict=True)
        if o == {("admit", "ok")}
    ]
    await asyncio.gather(
        *(
            scan(client, gates[i % 4], code, "out", companions="reservation")
            for i, code in enumerate(leaving + leaving)
        )
    )
    assert await occupancy(client, venue) == 0
