"""Revocation (lost phone) online and through the signed feed offline gates use."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jwt
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from codes import verifier
from tests.factories import (
    Machine,
    Resident,
    add_dependent,
    assert_problem,
    code_of,
    machine,
    resident,
)


async def verdict(client: httpx.AsyncClient, gate: Machine, code: str) -> dict[str, Any]:
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=gate.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def revoke(client: httpx.AsyncClient, who: Resident | Machine, **body: str) -> httpx.Response:
    return await client.post("/v1/codes/revoke", json=body, headers=who.headers)


@pytest.mark.cluster
async def test_revoking_stops_every_code_issued_so_far_but_not_later_ones(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    older = await code_of(client, who)
    clock.advance(seconds=10)
    consumed = await code_of(client, who)
    assert (await verdict(client, gate, consumed))["valid"] is True
    same_second = await code_of(client, who)  # issued in the revocation's own second
    response = await revoke(client, who)
    assert response.status_code == 200, response.text
    assert response.json()["codes_revoked"] >= 2
    for code in (older, consumed, same_second):
        assert (await verdict(client, gate, code))["reason"] == "code_revoked"
    fresh = await code_of(client, who)  # the new phone, right away
    assert (await verdict(client, gate, fresh))["valid"] is True


async def test_revoking_one_person_leaves_others_alone(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    lost, other = await resident(client, ctx), await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, other)
    assert (await revoke(client, lost)).status_code == 200
    assert (await verdict(client, gate, code))["valid"] is True


async def test_guardian_revokes_a_dependents_codes(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    parent = await resident(client, ctx)
    child = await add_dependent(client, parent)
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, parent, dependent_id=child)
    own = await code_of(client, parent)
    assert (await revoke(client, parent, dependent_id=child)).status_code == 200
    assert (await verdict(client, gate, code))["reason"] == "code_revoked"
    assert (await verdict(client, gate, own))["valid"] is True


async def test_a_resident_naming_another_subject_revokes_nothing_of_theirs(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    # Naming someone else once returned 200 and revoked the caller's own codes.
    parent, stranger = await resident(client, ctx), await resident(client, ctx)
    child = await add_dependent(client, parent)
    gate = await machine(client, ctx, "gate", "venue-1")
    own, theirs = await code_of(client, parent), await code_of(client, stranger)
    assert stranger.subject_id is not None and parent.subject_id is not None
    refused = await revoke(client, parent, subject_id=stranger.subject_id)
    assert refused.status_code == 404, refused.text
    assert (await verdict(client, gate, own))["valid"] is True
    assert (await verdict(client, gate, theirs))["valid"] is True
    # A dependent named as subject_id is honoured; so is the resident's own subject id.
    child_code = await code_of(client, parent, dependent_id=child)
    assert (await revoke(client, parent, subject_id=child)).status_code == 200
    assert (await verdict(client, gate, child_code))["reason"] == "code_revoked"
    mine = await code_of(client, parent)
    assert (await revoke(client, parent, subject_id=parent.subject_id)).status_code == 200
    assert (await verdict(client, gate, mine))["reason"] == "code_revoked"
    both = await revoke(client, parent, subject_id=parent.subject_id, dependent_id=child)
    assert both.status_code == 422


async def test_admin_revokes_a_named_subject(client: httpx.AsyncClient, ctx: AppContext) -> None:
    who = await resident(client, ctx)
    admin = await machine(client, ctx, "admin")
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, who)
    missing = await revoke(client, admin)
    assert_problem(missing, 422, "subject_required")
    unknown = await revoke(client, admin, subject_id="sub_nobody")
    assert unknown.status_code == 404
    assert who.subject_id is not None
    assert (await revoke(client, admin, subject_id=who.subject_id)).status_code == 200
    assert (await verdict(client, gate, code))["reason"] == "code_revoked"


async def test_gates_cannot_revoke(client: httpx.AsyncClient, ctx: AppContext) -> None:
    gate = await machine(client, ctx, "gate", "venue-1")
    assert (await revoke(client, gate, subject_id="x")).status_code == 403


@pytest.mark.cluster
async def test_revocation_racing_verifications_never_admits_after_it_returns(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    gates = [await machine(client, ctx, "gate", f"venue-{i}") for i in range(4)]
    codes = [await code_of(client, who) for _ in range(4)]
    await asyncio.gather(
        revoke(client, who), *(verdict(client, g, c) for g, c in zip(gates, codes, strict=True))
    )
    after = await asyncio.gather(
        *(verdict(client, g, c) for g, c in zip(gates, codes, strict=True))
    )
    assert all(v["reason"] == "code_revoked" for v in after)


async def fetch_feed(client: httpx.AsyncClient, gate: Machine, since: int = 0) -> dict[str, Any]:
    response = await client.get(
        "/v1/codes/revocations", params={"since": since}, headers=gate.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def open_feed(feed: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    """What an offline gate does: verify the JWS with a key from the JWK Set, use its payload."""
    header = jwt.get_unverified_header(feed["jws"])
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    payload: dict[str, Any] = json.loads(
        jwt.api_jws.PyJWS().decode(feed["jws"], key, algorithms=["ES256"])
    )
    return payload


async def test_offline_gate_learns_revoked_codes_from_the_signed_feed(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    code = await code_of(client, who)
    jwks = (await client.get("/v1/codes/keys")).json()
    keys = verifier.keys_from_jwks(jwks)
    empty = await fetch_feed(client, gate)
    assert empty["entries"] == [] and empty["next_cursor"] == 0
    assert (await revoke(client, who)).status_code == 200
    feed = await fetch_feed(client, gate)
    signed = open_feed(feed, jwks)
    assert signed == {k: v for k, v in feed.items() if k != "jws"}
    revoked = {e["code_id"] for e in signed["entries"]}
    decided = verifier.verify(code, keys, revoked, clock.now())
    assert decided.reason == "code_revoked"
    later = await fetch_feed(client, gate, since=signed["next_cursor"])
    assert later["entries"] == [] and later["next_cursor"] == signed["next_cursor"]


async def test_a_tampered_feed_fails_its_signature(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    await code_of(client, who)
    await revoke(client, who)
    feed = await fetch_feed(client, gate)
    head, _, sig = feed["jws"].split(".")
    forged = jwt.utils.base64url_encode(b'{"entries":[]}').decode()
    jwks = (await client.get("/v1/codes/keys")).json()
    try:
        open_feed({**feed, "jws": f"{head}.{forged}.{sig}"}, jwks)
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("a forged feed verified")


async def test_feed_entries_stop_once_the_codes_have_expired(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    await code_of(client, who)
    await revoke(client, who)
    assert (await fetch_feed(client, gate))["entries"]
    clock.advance(seconds=91)
    feed = await fetch_feed(client, gate)
    assert feed["entries"] == [] and feed["next_cursor"] > 0


async def test_only_verifiers_read_the_feed(client: httpx.AsyncClient, ctx: AppContext) -> None:
    who = await resident(client, ctx)
    response = await client.get("/v1/codes/revocations", headers=who.headers)
    assert response.status_code == 403
    assert (await client.get("/v1/codes/revocations")).status_code == 401
    hospital = await machine(client, ctx, "hospital", "hosp-1")
    response = await client.get("/v1/codes/revocations", headers=hospital.headers)
    assert response.status_code == 200
