"""Printed codes (离线码): issued at a kiosk, one valid card per person, revocable from the
app or a kiosk, verified online on the holder's current status and never consumed."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import AuditEvent
from codes import codec, verifier
from codes.api import holder_of
from codes.printed_card import card_date
from tests.auth.helpers import KIOSK_LOCATION, KioskVisit, kiosk, kiosk_visit, pdf_qr
from tests.factories import (
    Machine,
    add_dependent,
    assert_problem,
    bearer,
    login,
    machine,
    pdf_text,
    resident,
)
from tests.venues.helpers import make_gate, make_venue, offline


async def issue(
    client: httpx.AsyncClient, visit: KioskVisit, dependent_id: str | None = None
) -> dict[str, Any]:
    body = {"dependent_id": dependent_id} if dependent_id else {}
    response = await client.post("/v1/codes/printed", json=body, headers=visit.headers)
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


async def verdict(client: httpx.AsyncClient, gate: Machine, code: str) -> dict[str, Any]:
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=gate.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_kiosk_prints_a_card_and_a_second_one_voids_the_first(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx, name="陈阿婆")
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    first = await issue(client, visit)
    assert first["code"].startswith("SC1:") and len(first["code"]) == 142
    assert codec.decode(first["code"]).payload.type == codec.TYPE_PRINTED
    assert first["masked_name"] == "陈*婆" and first["issuing_point"] == KIOSK_LOCATION
    issued_at = datetime.fromisoformat(first["issued_at"])
    assert datetime.fromisoformat(first["expires_at"]) - issued_at == timedelta(days=180)
    gate = await machine(client, ctx, "gate", "ven_a")
    assert (await verdict(client, gate, first["code"]))["valid"] is True
    second = await issue(client, visit)
    assert second["code_id"] != first["code_id"]
    refused = await verdict(client, gate, first["code"])
    assert (refused["valid"], refused["reason"], refused["kind"]) == (
        False,
        "code_revoked",
        "printed",
    )
    assert (await verdict(client, gate, second["code"]))["valid"] is True
    current = await client.get("/v1/codes/printed", headers=person.headers)
    assert current.json()["code_id"] == second["code_id"]
    # Offline gates learn it from the revocation feed: a photocopy of the first card is
    # refused there too once they sync.
    feed = (await client.get("/v1/codes/revocations", headers=gate.headers)).json()
    revoked = {e["code_id"] for e in feed["entries"]}
    assert first["code_id"] in revoked and second["code_id"] not in revoked
    keys = verifier.keys_from_jwks((await client.get("/v1/codes/keys")).json())
    offline = verifier.verify(first["code"], keys, revoked, clock.now(), kind=verifier.GATE_KINDS)
    assert offline.reason == "code_revoked"
    assert verifier.verify(
        second["code"], keys, revoked, clock.now(), kind=verifier.GATE_KINDS
    ).valid


async def test_printed_codes_are_issued_at_a_kiosk_only(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx)
    at_home = await client.post("/v1/codes/printed", json={}, headers=person.headers)
    assert_problem(at_home, 403, "kiosk_required")
    none_yet = await client.get("/v1/codes/printed", headers=person.headers)
    assert_problem(none_yet, 404, "not_found")
    assert_problem(
        await client.get("/v1/codes/printed-code.pdf", headers=person.headers), 404, "not_found"
    )


async def test_a_guardian_at_a_kiosk_prints_their_dependents_card_only(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    son = await resident(client, ctx, name="林大明")
    mother = await add_dependent(client, son, name="林老太", relation="parent")
    stranger = await resident(client, ctx, name="郑一一")
    strangers_child = await add_dependent(client, stranger, name="郑小一")
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), son)
    card = await issue(client, visit, mother)
    assert card["subject_id"] == mother and card["masked_name"] == "林*太"
    gate = await machine(client, ctx, "gate", "ven_a")
    seen = await verdict(client, gate, card["code"])
    assert seen["subject"]["masked_name"] == "林*太"
    assert await holder_of(ctx, card["code"]) == mother
    other = await client.post(
        "/v1/codes/printed", json={"dependent_id": strangers_child}, headers=visit.headers
    )
    assert_problem(other, 404, "not_found")
    # The son's own card is another card: printing it leaves his mother's valid.
    own = await issue(client, visit)
    assert (await verdict(client, gate, card["code"]))["valid"] is True
    assert (await verdict(client, gate, own["code"]))["subject"]["masked_name"] == "林*明"
    # Back home, the son revokes his mother's lost card from the app; his own stays valid.
    lost = await client.post(
        "/v1/codes/printed/revoke", json={"dependent_id": mother}, headers=son.headers
    )
    assert lost.status_code == 200, lost.text
    assert (await verdict(client, gate, card["code"]))["reason"] == "code_revoked"
    assert (await verdict(client, gate, own["code"]))["valid"] is True


async def test_a_lost_card_is_revoked_from_the_app_or_at_a_kiosk(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    gate = await machine(client, ctx, "gate", "ven_a")
    card = await issue(client, visit)
    from_app = await client.post("/v1/codes/printed/revoke", json={}, headers=person.headers)
    assert from_app.status_code == 200, from_app.text
    assert from_app.json()["code_id"] == card["code_id"]
    assert (await verdict(client, gate, card["code"]))["reason"] == "code_revoked"
    again = await client.post("/v1/codes/printed/revoke", json={}, headers=person.headers)
    assert_problem(again, 404, "not_found")
    replacement = await issue(client, visit)
    at_kiosk = await client.post("/v1/codes/printed/revoke", json={}, headers=visit.headers)
    assert at_kiosk.status_code == 200, at_kiosk.text
    assert (await verdict(client, gate, replacement["code"]))["reason"] == "code_revoked"
    actions = {e.action: e for e in await AuditEvent.filter(actor=at.client_id).order_by("id")}
    assert actions["printed_code_issued"].target == person.subject_id
    assert actions["printed_code_revoked"].detail["code_id"] == replacement["code_id"]


async def test_online_a_card_shows_the_current_colour_and_is_never_consumed(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    card = await issue(client, visit)
    gate_a = await machine(client, ctx, "gate", "ven_a")
    gate_b = await machine(client, ctx, "gate", "ven_b")
    first = await verdict(client, gate_a, card["code"])
    assert (first["valid"], first["kind"], first["issued_status"]) == (True, "printed", None)
    assert first["subject"]["status"] == "green"
    authority = await machine(client, ctx, "authority")
    red = await client.put(
        f"/v1/health-status/{person.subject_id}",
        json={"status": "red", "reason": "close contact"},
        headers=authority.headers,
    )
    assert red.status_code == 200, red.text
    # Shown again and again, at two gates: never code_replayed, never status_changed; the
    # gate sees red and decides on it.
    for gate in (gate_a, gate_b, gate_a, gate_b):
        seen = await verdict(client, gate, card["code"])
        assert (seen["valid"], seen["reason"], seen["subject"]["status"]) == (True, "ok", "red")


async def test_a_card_expires_after_its_validity(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    card = await issue(client, visit)
    clock.advance(days=180, seconds=-60)
    gate = await machine(client, ctx, "gate", "ven_a")
    assert (await verdict(client, gate, card["code"]))["valid"] is True
    clock.advance(seconds=60 + 31)  # past expiry and the 30 s skew
    gate = await machine(client, ctx, "gate", "ven_a")
    late = await verdict(client, gate, card["code"])
    assert (late["valid"], late["reason"]) == (False, "code_expired")
    fresh = await login(client, ctx, person.phone)  # months later: a new login
    expired = await client.get("/v1/codes/printed", headers=bearer(fresh["access_token"]))
    assert_problem(expired, 404, "not_found")


async def test_a_card_outlives_a_key_rotation(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    card = await issue(client, visit)
    old = ctx.keys.signing["codes"].active()
    ctx.keys.signing["codes"].rotate()
    clock.advance(days=30)  # far past the window of dynamic codes the old key signed
    gate = await machine(client, ctx, "gate", "ven_a")
    assert (await verdict(client, gate, card["code"]))["valid"] is True
    published = {k["kid"]: k for k in (await client.get("/v1/codes/keys")).json()["keys"]}
    assert published[old.kid]["printed_exp"] > clock.now().timestamp()
    keys = verifier.keys_from_jwks({"keys": list(published.values())})
    assert verifier.verify(card["code"], keys, (), clock.now(), kind=verifier.GATE_KINDS).valid


async def test_the_a6_card_shows_name_dates_and_place_and_its_qr_verifies(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx, name="黄婆婆")
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    card = await issue(client, visit)
    response = await client.get("/v1/codes/printed-code.pdf", headers=visit.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    # Lines wrap and justify on an A6 card: compare without whitespace.
    text = "".join(pdf_text(response.content).split())
    issued = datetime.fromisoformat(card["issued_at"])
    expires = datetime.fromisoformat(card["expires_at"])
    for expected in ("黄*婆", card_date(issued), card_date(expires), KIOSK_LOCATION, "离线码"):
        assert "".join(expected.split()) in text, expected
    assert "黄婆婆" not in text
    printed = pdf_qr(response.content)
    assert codec.decode(printed).payload.token.hex() == card["code_id"]
    gate = await machine(client, ctx, "gate", "ven_a")
    seen = await verdict(client, gate, printed)
    assert (seen["valid"], seen["code_id"]) == (True, card["code_id"])


async def test_concurrent_prints_leave_exactly_one_valid_card(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    cards = await asyncio.gather(*(issue(client, visit) for _ in range(5)))
    gate = await machine(client, ctx, "gate", "ven_a")
    verdicts = [await verdict(client, gate, c["code"]) for c in cards]
    assert [v["valid"] for v in verdicts].count(True) == 1
    assert {v["reason"] for v in verdicts if not v["valid"]} == {"code_revoked"}
    current = (await client.get("/v1/codes/printed", headers=person.headers)).json()
    assert current["code_id"] == next(
        c["code_id"] for c, v in zip(cards, verdicts, strict=True) if v["valid"]
    )


async def test_a_photocopy_of_a_revoked_card_is_refused_offline_after_sync(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, printed_codes_offline=True)
    gate = await make_gate(client, venue)
    person = await resident(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, await kiosk(client, ctx), person)
    card = await issue(client, visit)
    before = await offline(client, gate, clock)
    admitted = before.decide(card["code"], "in", clock.now())
    assert admitted.decision == "admit", admitted
    revoked = await client.post("/v1/codes/printed/revoke", json={}, headers=person.headers)
    assert revoked.status_code == 200, revoked.text
    after = await offline(client, gate, clock)  # the next bundle the gate fetches
    refused = after.decide(card["code"], "in", clock.now())
    assert (refused.decision, refused.reason) == ("deny", "code_revoked")
