"""Issuing and verifying identity codes over HTTP: formats, privacy, replay, status, expiry."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from codes import codec
from codes.states import Status
from tests.factories import (
    Machine,
    add_dependent,
    assert_problem,
    code_body,
    code_of,
    machine,
    resident,
)


async def gate(client: httpx.AsyncClient, ctx: AppContext, venue: str = "venue-1") -> Machine:
    return await machine(client, ctx, "gate", venue)


async def verify(client: httpx.AsyncClient, verifier: Machine, code: str) -> dict[str, Any]:
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=verifier.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_resident_gets_a_code_valid_60s_with_refresh_after_30s(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    response = await client.get("/v1/codes/me", headers=who.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["code"].startswith("SC1:") and len(body["code"]) <= 150
    assert body["status"] == "green" and body["refresh_after"] == 30
    issued = datetime.fromisoformat(body["issued_at"])
    assert datetime.fromisoformat(body["expires_at"]) - issued == timedelta(seconds=60)
    assert abs((issued - clock.now()).total_seconds()) < 1


async def test_two_codes_of_one_person_share_nothing_but_colour_key_and_time(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    first = codec.decode(await code_of(client, who)).payload
    second = codec.decode(await code_of(client, who)).payload
    assert first.token != second.token
    assert who.subject_id is not None
    assert who.subject_id.encode() not in codec.b45decode((await code_of(client, who))[4:])


async def test_code_before_identity_is_409_identity_required(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx, identity=False)
    response = await client.get("/v1/codes/me", headers=who.headers)
    assert_problem(response, 409, "identity_required")


async def test_code_needs_a_resident_token(client: httpx.AsyncClient, ctx: AppContext) -> None:
    assert (await client.get("/v1/codes/me")).status_code == 401
    scanner = await gate(client, ctx)
    assert (await client.get("/v1/codes/me", headers=scanner.headers)).status_code == 403


async def test_png_code_decodes_back_to_the_code_string(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    response = await client.get("/v1/codes/me", params={"format": "png"}, headers=who.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    # The ArUco-based detector: the classic one misses ~1% of clean, valid symbols.
    text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    assert text.startswith("SC1:")
    scanner = await gate(client, ctx)
    assert (await verify(client, scanner, text))["valid"] is True


async def test_accept_header_chooses_svg(client: httpx.AsyncClient, ctx: AppContext) -> None:
    who = await resident(client, ctx)
    response = await client.get("/v1/codes/me", headers={**who.headers, "Accept": "image/svg+xml"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.content.lstrip().startswith(b"<")


async def test_unknown_format_is_a_validation_error(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    response = await client.get("/v1/codes/me", params={"format": "gif"}, headers=who.headers)
    assert_problem(response, 422, "validation_failed")


async def test_guardian_shows_a_dependents_code_but_not_a_strangers(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    parent = await resident(client, ctx)
    child = await add_dependent(client, parent)
    stranger = await resident(client, ctx)
    body = await code_body(client, parent, dependent_id=child)
    scanner = await gate(client, ctx)
    verdict = await verify(client, scanner, body["code"])
    assert verdict["valid"] and verdict["subject"]["masked_name"] == "张*明"
    response = await client.get(
        "/v1/codes/me", params={"dependent_id": child}, headers=stranger.headers
    )
    assert response.status_code == 404


async def test_verifier_sees_masked_name_colour_and_age_group_only(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx, name="王小红")
    scanner = await gate(client, ctx)
    verdict = await verify(client, scanner, await code_of(client, who))
    assert verdict["valid"] is True and verdict["reason"] == "ok"
    assert verdict["subject"]["masked_name"] == "王*红"
    assert verdict["subject"]["status"] == "green" and verdict["subject"]["age_group"]
    text = str(verdict)
    assert who.subject_id is not None
    assert "王小红" not in text and who.subject_id not in text
    assert who.id_number is not None and who.id_number not in text


async def test_verify_needs_the_codes_verify_scope(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    code = await code_of(client, who)
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=who.headers)
    assert_problem(response, 403, "forbidden")
    assert (await client.post("/v1/codes/verify", json={"code": code})).status_code == 401
    operator = await machine(client, ctx, "operator", "venue-1")
    response = await client.post("/v1/codes/verify", json={"code": code}, headers=operator.headers)
    assert response.status_code == 403


async def test_garbage_and_oversized_codes_get_reasons_not_errors(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    scanner = await gate(client, ctx)
    for text in ["", "SC1:", "hello", "SC1:" + "A" * 300, "SC1:€€€"]:
        verdict = await verify(client, scanner, text)
        assert verdict == {**verdict, "valid": False, "reason": "code_malformed", "subject": None}
    response = await client.post(
        "/v1/codes/verify", json={"code": "x" * 5000}, headers=scanner.headers
    )
    assert response.status_code == 422
    response = await client.post("/v1/codes/verify", json={"kode": 1}, headers=scanner.headers)
    assert response.status_code == 422


@pytest.mark.cluster
async def test_same_gate_may_rescan_but_another_verifier_gets_code_replayed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    code = await code_of(client, who)
    first, second = await gate(client, ctx), await gate(client, ctx, "venue-2")
    assert (await verify(client, first, code))["valid"] is True
    assert (await verify(client, first, code))["valid"] is True
    replayed = await verify(client, second, code)
    assert (replayed["valid"], replayed["reason"], replayed["subject"]) == (
        False,
        "code_replayed",
        None,
    )
    assert (await verify(client, first, code))["valid"] is True


@pytest.mark.cluster
async def test_a_failed_verification_does_not_consume_the_code(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    first, second = await gate(client, ctx), await gate(client, ctx, "venue-2")
    clock.advance(seconds=40)  # the issuer's clock runs ahead by more than the skew
    code = await code_of(client, who)
    clock.advance(seconds=-40)
    assert (await verify(client, first, code))["reason"] == "code_not_yet_valid"
    clock.advance(seconds=40)
    assert (await verify(client, second, code))["valid"] is True


@pytest.mark.cluster
async def test_concurrent_verifications_by_many_verifiers_admit_exactly_one(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    who = await resident(client, ctx)
    verifiers = [await gate(client, ctx, f"venue-{i}") for i in range(12)]
    for _ in range(3):
        code = await code_of(client, who)
        verdicts = await asyncio.gather(
            *(verify(client, v, code) for v in verifiers for _ in range(3))
        )
        winners = {v["code_id"] for v in verdicts if v["valid"]}
        valid = [i for i, v in enumerate(verdicts) if v["valid"]]
        # Only the winner's own three presentations may succeed; all others are replays.
        assert 1 <= len(valid) <= 3 and len({i // 3 for i in valid}) == 1
        assert len(winners) == 1
        assert all(v["reason"] == "code_replayed" for v in verdicts if not v["valid"])


async def test_codes_expire_after_lifetime_plus_skew(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    code = await code_of(client, who)
    scanner = await gate(client, ctx)
    clock.advance(seconds=90)
    assert (await verify(client, scanner, code))["valid"] is True
    clock.advance(seconds=1)
    verdict = await verify(client, scanner, code)
    assert (verdict["valid"], verdict["reason"]) == (False, "code_expired")


async def test_a_code_from_another_issuer_is_unknown_key(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    rogue = ec.generate_private_key(ec.SECP256R1())
    payload = codec.Payload(
        codec.TYPE_IDENTITY,
        codec.key_id_of(rogue.public_key()),
        int(clock.now().timestamp()),
        60,
        Status.GREEN,
        bytes(16),
    )
    scanner = await gate(client, ctx)
    verdict = await verify(client, scanner, codec.sign(payload, rogue))
    assert verdict["reason"] == "unknown_key"
