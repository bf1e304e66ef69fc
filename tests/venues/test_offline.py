"""Offline bundles, the offline gate client, and syncing its scans back."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from codes import codec
from tests.auth.helpers import kiosk, kiosk_visit
from tests.factories import assert_problem, code_of, resident
from tests.venues.helpers import (
    book,
    conflicts_of,
    make_gate,
    make_slot,
    make_venue,
    offline,
    scan,
    sync,
)
from venues.offline_gate import PRINTED_OFFLINE_NOT_ALLOWED, BundleInvalid, OfflineGate


async def test_bundle_is_signed_valid_24h_and_leaks_no_identity(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, reservation_required=True)
    gate = await make_gate(client, venue)
    slot = await make_slot(client, venue, clock.now() + timedelta(hours=1))
    holder = await resident(client, ctx)
    assert (await book(client, holder, slot["id"])).status_code == 201
    got = (await client.get("/v1/gates/bundle", headers=gate.headers)).json()
    assert got["expires_at"] == (clock.now() + timedelta(hours=24)).isoformat().replace(
        "+00:00", "Z"
    )
    text = got["bundle"] + str(got["document"])
    assert holder.subject_id is not None and holder.subject_id not in text
    assert "张" not in text
    assert 1 <= len(got["document"]["reservations"]) <= 2, "one per day the window touches"
    keys = (await client.get("/v1/gates/bundle/keys")).json()
    OfflineGate.load(got["bundle"], keys, gate.client_id, clock.now())
    head, body, sig = got["bundle"].split(".")
    with pytest.raises(BundleInvalid):
        OfflineGate.load(f"{head}.{body}.{sig[:-4]}AAAA", keys, gate.client_id, clock.now())
    with pytest.raises(BundleInvalid):
        OfflineGate.load(got["bundle"], keys, gate.client_id, clock.now() + timedelta(hours=25))


async def test_offline_gate_applies_policy_with_hashed_reservations(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, reservation_required=True)
    gate = await make_gate(client, venue)
    slot = await make_slot(client, venue, clock.now() + timedelta(minutes=20))
    holder, walker = await resident(client, ctx), await resident(client, ctx)
    assert (await book(client, holder, slot["id"])).status_code == 201
    local = await offline(client, gate, clock)
    holder_code = await code_of(client, holder)
    admitted = local.decide(holder_code, "in", clock.now())
    assert (admitted.decision, admitted.reason) == ("admit", "ok")
    repeat = local.decide(holder_code, "in", clock.now())
    assert (repeat.decision, repeat.repeat_of) == ("admit", admitted.scan_id), "a code admits once"
    assert local.decide(await code_of(client, holder), "in", clock.now()).reason == "already_inside"
    assert (
        local.decide(await code_of(client, walker), "in", clock.now()).reason
        == "reservation_required"
    )
    assert local.decide("SC1:garbage", "in", clock.now()).reason == "code_malformed"
    assert local.occupancy == 1
    result = await sync(client, gate, [s.as_json() for s in local.pending])
    assert result["recorded"] == 5 and result["conflicts"] == []
    assert result["occupancy"] == 1
    again = await sync(client, gate, [s.as_json() for s in local.pending])
    assert again["duplicates"] == 5 and again["occupancy"] == 1, "sync is idempotent"
    entries = (
        await client.get(f"/v1/venues/{venue.id}/entries", headers=venue.operator.headers)
    ).json()
    times = {e["scan_id"]: e["scanned_at"] for e in entries["items"]}
    assert times[admitted.scan_id] == admitted.scanned_at.isoformat().replace("+00:00", "Z")
    assert all(e["offline"] for e in entries["items"])


async def test_sync_reports_conflicts_instead_of_dropping_them(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=2)
    online_gate, offline_gate = await make_gate(client, venue), await make_gate(client, venue)
    local = await offline(client, offline_gate, clock)
    twin = await resident(client, ctx)
    twin_code = await code_of(client, twin)
    assert (await scan(client, online_gate, twin_code)).json()["decision"] == "admit"
    elsewhere = local.decide(twin_code, "in", clock.now())
    assert elsewhere.decision == "admit", "the offline gate could not know"
    lost_phone = await resident(client, ctx)
    lost_code = await code_of(client, lost_phone)
    revoked = await client.post("/v1/codes/revoke", json={}, headers=lost_phone.headers)
    assert revoked.status_code == 200, revoked.text
    late = local.decide(lost_code, "in", clock.now())
    assert late.decision == "admit", "the bundle predates the revocation"
    result = await sync(client, offline_gate, [elsewhere.as_json(), late.as_json()])
    found = conflicts_of(result)
    assert found[elsewhere.scan_id] == {"code_admitted_elsewhere", "already_inside"}
    assert found[late.scan_id] == {"code_revoked"}
    assert result["occupancy"] == 2, "the twin is counted once"
    third = local.decide(await code_of(client, await resident(client, ctx)), "in", clock.now())
    assert third.decision == "deny", "the gate counted three"
    overrun = dict(third.as_json(), decision="admit", reason="ok")
    full = await sync(client, offline_gate, [overrun])
    assert conflicts_of(full) == {third.scan_id: {"capacity_overrun"}}
    assert full["occupancy"] == 2, "occupancy never exceeds capacity"
    changed = dict(elsewhere.as_json(), direction="out")
    reused = await sync(client, offline_gate, [changed])
    assert reused["results"][0] == {
        "scan_id": elsewhere.scan_id, "outcome": "rejected", "conflicts": [],
        "reason": "scan_id_reused",
    }  # fmt: skip


async def test_sync_rejects_malformed_batches(client: httpx.AsyncClient, ctx: AppContext) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    naive = {"scan_id": "a", "code": "x", "direction": "in", "decision": "admit",
             "scanned_at": "2026-01-01T00:00:00"}  # fmt: skip
    bodies: list[dict[str, Any]] = [
        {"scans": []},
        {"scans": [{"scan_id": "a", "code": "x", "direction": "in"}]},
        {"scans": [naive]},
    ]
    for body in bodies:
        bad = await client.post("/v1/gates/sync", json=body, headers=gate.headers)
        assert_problem(bad, 422, "validation_failed")


async def test_offline_gate_admits_a_code_once_and_counts_exits_only_for_people_inside(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, capacity=2, anti_passback=False)
    gate = await make_gate(client, venue)
    inside = await resident(client, ctx)
    assert (await scan(client, gate, await code_of(client, inside))).json()["occupancy"] == 1
    local = await offline(client, gate, clock)
    assert local.occupancy == 1
    code = await code_of(client, await resident(client, ctx))
    first = local.decide(code, "in", clock.now())
    again = local.decide(code, "in", clock.now())
    assert (first.decision, first.repeat_of) == ("admit", None)
    assert (again.decision, again.reason, again.repeat_of) == ("admit", "ok", first.scan_id)
    assert local.occupancy == 2, "a repeated code is not counted"
    stranger = local.decide(await code_of(client, await resident(client, ctx)), "out", clock.now())
    assert stranger.decision == "admit" and local.occupancy == 2, "never seen entering here"
    result = await sync(client, gate, [s.as_json() for s in local.pending])
    assert (result["recorded"], result["conflicts"], result["occupancy"]) == (3, [], 2)


def card_signed_by_the_server(ctx: AppContext, clock: FrozenClock, days: int = 180) -> str:
    """A printed code (type 3) signed with the server's active codes key, as a kiosk's card
    is: a gate trusts it through the bundle's code keys."""
    key = ctx.keys.signing["codes"].active()
    payload = codec.Payload(
        type=codec.TYPE_PRINTED,
        key_id=codec.key_id_of(key.public_key),
        issued_at=int(clock.now().timestamp()),
        lifetime_s=days * 86400,
        token=secrets.token_bytes(16),
    )
    return codec.sign(payload, key.private_key)


async def test_offline_gate_admits_printed_codes_only_where_the_policy_allows(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    allowing = await make_venue(client, ctx, printed_codes_offline=True)
    keeping = await make_venue(client, ctx)
    booked_only = await make_venue(
        client, ctx, printed_codes_offline=True, reservation_required=True
    )
    card = card_signed_by_the_server(ctx, clock)
    here = await offline(client, await make_gate(client, allowing), clock)
    assert here.policy.printed_codes_offline
    first = here.decide(card, "in", clock.now())
    assert (first.decision, first.reason) == ("admit", "ok"), "no colour to check offline"
    again = here.decide(card, "in", clock.now())
    assert (again.decision, again.repeat_of) == ("admit", first.scan_id), "the same visit"
    assert here.decide(card, "out", clock.now()).decision == "admit"
    back = here.decide(card, "in", clock.now() + timedelta(hours=2))
    assert (back.decision, back.reason, back.repeat_of) == ("admit", "ok", None), "a new visit"
    assert here.occupancy == 1
    there = await offline(client, await make_gate(client, keeping), clock)
    refused = there.decide(card, "in", clock.now())
    assert (refused.decision, refused.reason) == ("deny", PRINTED_OFFLINE_NOT_ALLOWED)
    assert there.decide(card, "out", clock.now()).decision == "admit", "everyone is let out"
    assert there.occupancy == 0
    # A card opens to no pseudonym: a booking cannot be matched offline, so it is refused.
    booked = await offline(client, await make_gate(client, booked_only), clock)
    assert booked.decide(card, "in", clock.now()).reason == "reservation_required"
    expired = card_signed_by_the_server(ctx, clock, days=1)
    late = here.decide(expired, "in", clock.now() + timedelta(days=1, minutes=1))
    assert (late.decision, late.reason) == ("deny", "code_expired")


async def test_revoked_printed_card_is_refused_everywhere_once_synced(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    """A card admitted offline, then revoked (lost, or a photocopy going round): the sync
    records its visit and reports the admission after the revocation; every bundle made
    since refuses it, as does every online gate."""
    venue = await make_venue(client, ctx, printed_codes_offline=True)
    gate, other_gate = await make_gate(client, venue), await make_gate(client, venue)
    elsewhere = await make_gate(client, await make_venue(client, ctx, printed_codes_offline=True))
    holder = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), holder)
    issued = await client.post("/v1/codes/printed", json={}, headers=visit.headers)
    assert issued.status_code == 201, issued.text
    card = issued.json()["code"]
    local = await offline(client, gate, clock)
    entered = local.decide(card, "in", clock.now())
    repeat = local.decide(card, "in", clock.now())
    assert (entered.decision, repeat.repeat_of) == ("admit", entered.scan_id)
    left = local.decide(card, "out", clock.now())
    revoked = await client.post("/v1/codes/printed/revoke", json={}, headers=holder.headers)
    assert revoked.status_code == 200, revoked.text
    clock.advance(minutes=5)
    late = local.decide(card, "in", clock.now())
    assert late.decision == "admit", "the bundle predates the revocation"
    photocopy = await scan(client, other_gate, card)
    assert (photocopy.json()["decision"], photocopy.json()["reason"]) == ("deny", "code_revoked")
    result = await sync(client, gate, [s.as_json() for s in local.pending])
    # Codes publishes which codes are revoked, not since when: every admission by the card
    # in the upload is reported for staff to judge, the one after the revocation included.
    found = conflicts_of(result)
    assert set(found) == {entered.scan_id, repeat.scan_id, left.scan_id, late.scan_id}
    assert all(kinds == {"code_revoked"} for kinds in found.values()), found
    assert result["recorded"] == 4 and result["occupancy"] == 1, "in (once), out, in again"
    entries = (
        await client.get(f"/v1/venues/{venue.id}/entries", headers=venue.operator.headers)
    ).json()["items"]
    mine = {e["scan_id"] for e in entries}
    assert {entered.scan_id, repeat.scan_id, left.scan_id, late.scan_id} <= mine
    for at in (gate, elsewhere):
        refreshed = await offline(client, at, clock)
        assert refreshed.decide(card, "in", clock.now()).reason == "code_revoked"
