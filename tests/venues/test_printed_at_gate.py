"""Printed codes (离线码) at the online gate: decided by the venue's policy on the holder's
current status, admitted once per visit (not once in their 180-day life), refused once
revoked or expired; dynamic codes keep their one admission."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.auth.helpers import kiosk, kiosk_visit
from tests.factories import Resident, code_of, machine, resident
from tests.venues.helpers import (
    make_gate,
    make_venue,
    occupancy,
    scan,
    scan_id,
    set_status,
    sync,
)


async def printed_card(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock, person: Resident
) -> str:
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    issued = await client.post("/v1/codes/printed", json={}, headers=visit.headers)
    assert issued.status_code == 201, issued.text
    card: str = issued.json()["code"]
    return card


def outcome(response: httpx.Response) -> tuple[str, str, str | None, int]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body["decision"], body["reason"], body["repeat_of"], body["occupancy"]


async def test_a_printed_card_admits_once_per_visit_for_months(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=5)
    person = await resident(client, ctx)
    card = await printed_card(client, ctx, clock, person)
    for month in range(3):
        # Months pass: the operator and the gates hold fresh tokens.
        venue = replace(venue, operator=await machine(client, ctx, "operator", venue.id))
        gate = await make_gate(client, venue)
        entered = await scan(client, gate, card)
        assert outcome(entered) == ("admit", "ok", None, 1), f"visit {month}"
        assert entered.json()["credential"] == "printed"
        assert entered.json()["display"]["status"] == "green"
        # Shown again during the visit, here or at another gate: its admission again.
        other = await make_gate(client, venue)
        for at in (gate, other):
            again = await scan(client, at, card)
            assert outcome(again) == ("admit", "ok", entered.json()["scan_id"], 1)
        assert outcome(await scan(client, other, card, "out"))[::3] == ("admit", 0)
        assert await occupancy(client, venue) == 0
        clock.advance(days=30)


async def test_a_printed_card_is_decided_on_the_current_colour_and_refused_when_revoked(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    card = await printed_card(client, ctx, clock, person)
    await set_status(client, ctx, person.subject_id, "red")
    refused = await scan(client, gate, card)
    assert outcome(refused) == ("deny", "status_not_allowed", None, 0)
    assert refused.json()["display"]["status"] == "red"
    await set_status(client, ctx, person.subject_id, "green")
    assert outcome(await scan(client, gate, card))[:2] == ("admit", "ok")
    assert outcome(await scan(client, gate, card, "out"))[::3] == ("admit", 0)
    revoked = await client.post("/v1/codes/printed/revoke", json={}, headers=person.headers)
    assert revoked.status_code == 200, revoked.text
    assert outcome(await scan(client, gate, card)) == ("deny", "code_revoked", None, 0)


async def test_a_printed_card_expires(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    person = await resident(client, ctx)
    card = await printed_card(client, ctx, clock, person)
    clock.advance(days=181)
    venue = replace(venue, operator=await machine(client, ctx, "operator", venue.id))
    gate = await make_gate(client, venue)
    assert outcome(await scan(client, gate, card)) == ("deny", "code_expired", None, 0)


async def test_a_visit_ended_at_an_offline_gate_frees_the_card(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate, offline_gate = await make_gate(client, venue), await make_gate(client, venue)
    person = await resident(client, ctx)
    card = await printed_card(client, ctx, clock, person)
    first = await scan(client, gate, card)
    assert outcome(first)[:2] == ("admit", "ok")
    # They leave through a gate that was offline, showing their phone's code; it syncs later.
    code = await code_of(client, person)
    left = {"scan_id": scan_id(), "code": code, "direction": "out",
            "scanned_at": clock.now().isoformat(), "decision": "admit"}  # fmt: skip
    assert (await sync(client, offline_gate, [left]))["occupancy"] == 0
    clock.advance(minutes=5)
    back = await scan(client, gate, card)
    assert outcome(back) == ("admit", "ok", None, 1), "a new visit, not a repeat"


async def test_a_dynamic_code_still_admits_once_even_after_an_exit(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    code = await code_of(client, person)
    entered = await scan(client, gate, code)
    assert outcome(entered) == ("admit", "ok", None, 1)
    assert outcome(await scan(client, gate, code, "out"))[::3] == ("admit", 0)
    again = await scan(client, gate, code)
    assert outcome(again) == ("admit", "ok", entered.json()["scan_id"], 0)
    assert entered.json()["credential"] == "code"
