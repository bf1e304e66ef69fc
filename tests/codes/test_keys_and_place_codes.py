"""Signing keys (JWKS, rotation, verification window) and place codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.clock import FrozenClock
from app.context import AppContext
from app.settings import Settings
from codes import codec, verifier
from codes.errors import PlaceCodeInvalid
from codes.issuing import issue_code
from codes.place_codes import sign_place_code, verify_place_code
from tests.factories import code_of, machine, resident


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    # Rotation changes the key files: these tests get a key directory of their own.
    return settings.with_(key_dir=tmp_path / "keys")


async def jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/codes/keys")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    body: dict[str, Any] = response.json()
    return body


async def test_keys_are_published_as_a_jwk_set(client: httpx.AsyncClient, ctx: AppContext) -> None:
    keys = (await jwks(client))["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert {key["kty"], key["crv"], key["alg"]} == {"EC", "P-256", "ES256"}
    active = ctx.keys.signing["codes"].active()
    assert key["kid"] == active.kid and "exp" not in key and "d" not in key
    assert key["code_kid"] == codec.key_id_of(active.public_key).hex()


async def test_after_rotation_the_new_key_signs_and_old_codes_verify_until_they_expire(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "venue-1")
    old_code = await code_of(client, who)
    old = ctx.keys.signing["codes"].active()
    new = ctx.keys.signing["codes"].rotate()
    new_code = await code_of(client, who)
    assert codec.decode(new_code).payload.key_id == codec.key_id_of(new.public_key)
    published = {k["kid"]: k for k in (await jwks(client))["keys"]}
    assert set(published) == {old.kid, new.kid}
    assert "exp" not in published[new.kid]
    window_end = int(published[old.kid]["exp"])
    assert window_end == int(clock.now().timestamp()) + 90
    for code in (old_code, new_code):
        response = await client.post("/v1/codes/verify", json={"code": code}, headers=gate.headers)
        assert response.json()["valid"] is True
    # An offline gate holding this JWK Set accepts the old key only inside its window.
    offline = verifier.keys_from_jwks(await jwks(client))
    assert verifier.verify(old_code, offline, (), clock.now()).valid
    clock.advance(seconds=91)
    # Still published for the printed cards it may have signed (`printed_exp`, months
    # away), but past its `exp`: no identity code of it verifies, online or offline.
    later = await jwks(client)
    listed = {k["kid"]: k for k in later["keys"]}
    assert set(listed) == {old.kid, new.kid}
    assert int(listed[old.kid]["exp"]) == window_end
    assert int(listed[old.kid]["printed_exp"]) > clock.now().timestamp() + 179 * 86400
    gate = await machine(client, ctx, "gate", "venue-1")
    response = await client.post("/v1/codes/verify", json={"code": old_code}, headers=gate.headers)
    assert response.json()["reason"] == "unknown_key"
    assert verifier.verify(old_code, offline, (), clock.now()).reason == "unknown_key"
    reloaded = verifier.keys_from_jwks(later)
    assert verifier.verify(old_code, reloaded, (), clock.now()).reason == "unknown_key"


async def test_place_codes_round_trip_and_survive_rotation(ctx: AppContext) -> None:
    code = sign_place_code(ctx, "venue_42")
    assert codec.decode(code).payload.type == codec.TYPE_PLACE
    assert verify_place_code(ctx, code) == "venue_42"
    ctx.keys.signing["codes"].rotate()
    ctx.keys.signing["codes"].reload()
    assert verify_place_code(ctx, code) == "venue_42"


async def test_identity_codes_and_forgeries_are_not_place_codes(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    who = await resident(client, ctx)
    assert who.subject_id is not None
    identity = (await issue_code(ctx, who.subject_id)).code
    rogue = ec.generate_private_key(ec.SECP256R1())
    forged = codec.sign(
        codec.Payload(
            codec.TYPE_PLACE,
            codec.key_id_of(ctx.keys.signing["codes"].active().public_key),
            int(clock.now().timestamp()),
            0,
            venue_id="venue_42",
        ),
        rogue,
    )
    for bad, reason in ((identity, "code_malformed"), (forged, "signature_invalid"),
                        ("SC1:XYZ", "code_malformed")):  # fmt: skip
        with pytest.raises(PlaceCodeInvalid) as caught:
            verify_place_code(ctx, bad)
        assert caught.value.extra["reason"] == reason
        assert caught.value.code == "place_code_invalid"


async def test_identity_verification_refuses_place_codes(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", "venue-1")
    place = sign_place_code(ctx, "venue_42")
    response = await client.post("/v1/codes/verify", json={"code": place}, headers=gate.headers)
    assert response.json()["reason"] == "code_malformed"


async def test_cli_rotation_reaches_the_running_process(
    client: httpx.AsyncClient, ctx: AppContext, settings: Settings
) -> None:
    before = ctx.keys.signing["codes"].active().kid
    env = {**os.environ, "APP_ENV": "test", "KEY_DIR": str(settings.key_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "rotate", "--purpose", "codes"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    rotated = json.loads(done.stdout)["kid"]
    assert rotated != before
    await asyncio.sleep(1.1)  # running processes re-check the key index once a second
    who = await resident(client, ctx)
    code = await code_of(client, who)
    published = {k["code_kid"]: k["kid"] for k in (await jwks(client))["keys"]}
    assert published[codec.decode(code).payload.key_id.hex()] == rotated
    assert set(published.values()) == {before, rotated}
