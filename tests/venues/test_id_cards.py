"""ID cards at the online gate: the card holder decided by the venue's policy with their
current status, unknown numbers told nothing, rate limited per gate, refused where the
policy disables it, and admitted once per visit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import AuditEvent
from tests.factories import assert_problem, resident, valid_id_number
from tests.venues.helpers import Gate, make_gate, make_venue, occupancy, scan_id, set_status
from venues.gate import ID_CARD_SCANS_PER_MINUTE
from venues.models import Entry


async def card_scan(
    client: httpx.AsyncClient, gate: Gate, number: str, direction: str = "in", **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/gates/scan",
        json={"scan_id": scan_id(), "id_card": number, "direction": direction, **extra},
        headers=gate.headers,
    )


def verdict(response: httpx.Response) -> dict[str, Any]:
    """What a gate learns from an answer, without the parts every scan has of its own."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {k: v for k, v in body.items() if k not in ("scan_id", "scanned_at")}


async def test_an_id_card_admits_its_holder_once_per_visit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    assert person.id_number is not None
    first = await card_scan(client, gate, person.id_number)
    body = first.json()
    assert (body["decision"], body["reason"], body["credential"]) == ("admit", "ok", "id_card")
    assert body["display"]["status"] == "green" and "*" in body["display"]["masked_name"]
    assert body["occupancy"] == 1
    # Shown again while inside: the visit's admission again, nothing counted.
    again = (await card_scan(client, gate, person.id_number)).json()
    assert (again["decision"], again["repeat_of"], again["occupancy"]) == (
        "admit", body["scan_id"], 1,
    )  # fmt: skip
    left = (await card_scan(client, gate, person.id_number, "out")).json()
    assert (left["decision"], left["occupancy"]) == ("admit", 0)
    # The next visit is admitted and counted again.
    back = (await card_scan(client, gate, person.id_number)).json()
    assert (back["decision"], back["repeat_of"], back["occupancy"]) == ("admit", None, 1)
    # The entries are the audit trail: gate, time, person, credential; never the number.
    entries = await Entry.filter(venue_id=venue.id).order_by("id")
    assert [e.credential for e in entries] == ["id_card"] * 4
    assert {e.subject_id for e in entries} == {person.subject_id}
    for entry in entries:
        assert person.id_number not in str(entry.response) + entry.body_hash
    # And the security audit trail names the gate, the person and the outcome of each.
    events = await AuditEvent.filter(action="id_card_scan").order_by("id")
    assert [(e.actor, e.target) for e in events] == [(gate.client_id, person.subject_id)] * 4
    assert [e.detail["decision"] for e in events] == ["admit"] * 4
    assert events[0].detail["gate"] == gate.id and events[0].detail["tenant"] == venue.id
    assert all(person.id_number not in str(e.detail) for e in events)


async def test_an_unknown_number_is_refused_and_reveals_nothing(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    nobody = valid_id_number(date(1961, 2, 3))
    bad_check_digit = nobody[:17] + ("0" if nobody[17] != "0" else "1")
    answers = [verdict(await card_scan(client, gate, n)) for n in (nobody, bad_check_digit)]
    # A person who exists but has no booking at a venue that takes bookings only is not
    # known at that venue: the same answer as nobody at all.
    booked_only = await make_venue(client, ctx, reservation_required=True)
    booked_gate = await make_gate(client, booked_only)
    stranger = await resident(client, ctx)
    assert stranger.id_number is not None
    answers.append(verdict(await card_scan(client, booked_gate, stranger.id_number)))
    for answer in answers:
        assert (answer["decision"], answer["reason"]) == ("deny", "id_card_unknown")
        assert answer["display"] == {"masked_name": None, "status": None}
        assert answer["occupancy"] == 0 and answer["dependents"] == []
    assert answers[0] == answers[1]
    assert {k: v for k, v in answers[2].items() if k != "capacity"} == {
        k: v for k, v in answers[0].items() if k != "capacity"
    }


async def test_a_red_card_holder_is_refused_on_the_current_status(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    assert person.id_number is not None
    await set_status(client, ctx, person.subject_id, "red")
    body = (await card_scan(client, gate, person.id_number)).json()
    assert (body["decision"], body["reason"]) == ("deny", "status_not_allowed")
    assert body["display"]["status"] == "red"
    assert await occupancy(client, venue) == 0


async def test_id_card_scans_are_rate_limited_per_gate(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    busy, other = await make_gate(client, venue), await make_gate(client, venue)
    number = valid_id_number(date(1970, 1, 1))
    for _ in range(ID_CARD_SCANS_PER_MINUTE):
        assert (await card_scan(client, busy, number)).json()["reason"] == "id_card_unknown"
    refused = await card_scan(client, busy, number)
    body = assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1 and body["retry_after"] >= 1
    assert (await card_scan(client, other, number)).status_code == 200, "per gate"
    recorded = await Entry.filter(gate_id=busy.id).count()
    assert recorded == ID_CARD_SCANS_PER_MINUTE, "a refused scan is not recorded"
    clock.advance(seconds=61)
    assert (await card_scan(client, busy, number)).status_code == 200


async def test_a_venue_may_refuse_id_cards(client: httpx.AsyncClient, ctx: AppContext) -> None:
    venue = await make_venue(client, ctx, id_card_allowed=False)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    assert person.id_number is not None
    body = (await card_scan(client, gate, person.id_number)).json()
    assert (body["decision"], body["reason"]) == ("deny", "id_card_not_allowed")
    assert body["display"] == {"masked_name": None, "status": None}


async def test_a_scan_names_exactly_one_of_code_and_id_card(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    number = valid_id_number()
    for body in (
        {"direction": "in"},
        {"direction": "in", "code": "SC1:x", "id_card": number},
        {"direction": "in", "id_card": number[:17]},
        {"direction": "in", "id_card": number + "1"},
        {"direction": "in", "id_card": "31010119900517123Y"},
        {"direction": "in", "code": None},
        {"direction": "in", "code": None, "id_card": None},
        {"direction": "in", "code": "", "companions": None},
    ):
        sent = await client.post(
            "/v1/gates/scan", json={"scan_id": scan_id(), **body}, headers=gate.headers
        )
        assert_problem(sent, 422, "validation_failed")
    skewed = await card_scan(
        client, gate, number, scanned_at=(clock.now() - timedelta(hours=1)).isoformat()
    )
    assert_problem(skewed, 422, "clock_skewed")
