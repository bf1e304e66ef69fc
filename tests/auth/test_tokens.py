"""Access-token verification rejects every token it did not issue, through the HTTP API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.clock import FrozenClock
from app.context import AppContext
from app.keyring import SigningKeyring
from auth import tokens
from auth.principal import Principal, PrincipalKind
from tests.factories import assert_problem, bearer, resident


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")

    def pad(s: str) -> str:
        return s + "=" * (-len(s) % 4)

    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
    )


def hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/residents/me", headers=bearer(token))


def assert_rejected(response: httpx.Response, reason: str) -> None:
    body = assert_problem(response, 401, "unauthorized")
    assert body["reason"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_issued_token_carries_the_documented_claims(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx)
    header, claims = parts(someone.token)
    assert header["alg"] == "ES256" and header["kid"] == ctx.keys.signing["tokens"].active().kid
    assert claims["iss"] == ctx.settings.token_issuer
    assert claims["aud"] == ctx.settings.token_audience
    assert claims["sub"] == someone.account_id and claims["scope"] == "resident"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert (await me(client, someone.token)).status_code == 200


async def test_missing_or_non_bearer_authorization_is_401(client: httpx.AsyncClient) -> None:
    assert_rejected(await client.get("/v1/residents/me"), "missing")
    response = await client.get("/v1/residents/me", headers={"Authorization": "Basic YWJj"})
    assert_rejected(response, "missing")


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "...", "eyJ.eyJ.eyJ"])
async def test_garbage_token_is_401_malformed(client: httpx.AsyncClient, garbage: str) -> None:
    assert_rejected(await me(client, garbage), "malformed")


async def test_alg_none_token_is_rejected(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    header, claims = parts(someone.token)
    forged = hand_made({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims)
    assert_rejected(await me(client, forged), "algorithm_not_allowed")


async def test_hs256_signed_with_the_public_key_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    header, claims = parts(someone.token)
    public_pem = (
        ctx.keys.signing["tokens"]
        .active()
        .public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    forged = hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": header["kid"]},
        claims,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    assert_rejected(await me(client, forged), "algorithm_not_allowed")


async def test_token_signed_by_a_foreign_key_with_a_foreign_kid_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    _, claims = parts(someone.token)
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "attacker-1"})
    assert_rejected(await me(client, forged), "unknown_key")


async def test_token_signed_by_a_foreign_key_under_our_kid_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    header, claims = parts(someone.token)
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": header["kid"]})
    assert_rejected(await me(client, forged), "signature_invalid")


async def test_tampered_claims_break_the_signature(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    head, _, signature = someone.token.split(".")
    _, claims = parts(someone.token)
    claims["scope"] = "admin"
    tampered = f"{head}.{b64(json.dumps(claims).encode())}.{signature}"
    assert_rejected(await me(client, tampered), "signature_invalid")


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signature_s(token: str) -> int:
    sig = token.rsplit(".", 1)[1]
    return int.from_bytes(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))[32:], "big")


async def test_the_high_s_twin_of_a_valid_token_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    # (r, n - s) verifies under ECDSA as well as (r, s): a second spelling of one token.
    tokens_seen = [(await resident(client, ctx)).token for _ in range(6)]
    assert all(signature_s(t) <= P256_ORDER // 2 for t in tokens_seen), "issued in low-S form"
    token = tokens_seen[0]
    head, sig = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    twin_sig = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    twin = f"{head}.{b64(twin_sig)}"
    ctx_key = ctx.keys.signing["tokens"].active().private_key.public_key()
    signing_input = head.encode()
    r, s = int.from_bytes(twin_sig[:32], "big"), int.from_bytes(twin_sig[32:], "big")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    # The twin is a mathematically valid signature ...
    ctx_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    # ... which the server refuses.
    assert_rejected(await me(client, twin), "signature_not_canonical")
    assert (await me(client, token)).status_code == 200


async def test_expired_token_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx)
    clock.advance(minutes=15, seconds=9)
    assert (await me(client, someone.token)).status_code == 200  # inside the 10 s leeway
    clock.advance(seconds=1)
    assert_rejected(await me(client, someone.token), "expired")


async def test_token_from_the_future_is_rejected(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx)
    clock.advance(timedelta(seconds=-30))
    assert_rejected(await me(client, someone.token), "not_yet_valid")


def resign(ctx: AppContext, token: str, **changes: Any) -> str:
    """Our own key, our own kid, different claims: only the claim checks can refuse it."""
    header, claims = parts(token)
    claims.update(changes)
    key = ctx.keys.signing["tokens"].active()
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": header["kid"]})


async def test_wrong_audience_is_rejected(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    assert_rejected(await me(client, resign(ctx, someone.token, aud="other-api")), "wrong_audience")


async def test_wrong_issuer_is_rejected(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    assert_rejected(await me(client, resign(ctx, someone.token, iss="evil")), "wrong_issuer")


async def test_token_without_expiry_is_rejected(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    header, claims = parts(someone.token)
    del claims["exp"]
    key = ctx.keys.signing["tokens"].active()
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": header["kid"]})
    assert_rejected(await me(client, token), "malformed")


# -- the verifier's memo of already-verified tokens -----------------------------------


def issue_for(ring: SigningKeyring, now: datetime, who: str) -> str:
    principal = Principal(
        kind=PrincipalKind.RESIDENT, id=who, scopes=frozenset({"resident"}), family_id="f"
    )
    return tokens.issue(ring, issuer="iss", audience="aud", now=now, principal=principal).token


def test_memo_is_bounded_and_keeps_answering_correctly(tmp_path: Path) -> None:
    clock = FrozenClock()
    ring = SigningKeyring(tmp_path, "tokens", clock)
    ring.rotate()
    verifier = tokens.Verifier(ring, issuer="iss", audience="aud", max_entries=2)
    issued = [issue_for(ring, clock.now(), f"acc_{i}") for i in range(3)]
    for token in issued * 2:
        assert verifier.verify(token, clock.now()).principal.id.startswith("acc_")
    assert len(verifier._memo) == 2


def test_memoised_token_is_still_checked_for_time_and_key(tmp_path: Path) -> None:
    clock = FrozenClock()
    ring = SigningKeyring(tmp_path, "tokens", clock)
    ring.rotate()
    verifier = tokens.Verifier(ring, issuer="iss", audience="aud")
    token = issue_for(ring, clock.now(), "acc_1")
    verifier.verify(token, clock.now())
    with pytest.raises(tokens.TokenRejected) as late:
        verifier.verify(token, clock.now() + timedelta(minutes=16))
    assert late.value.reason == "expired"
    ring.rotate()
    clock.advance(minutes=16)
    with pytest.raises(tokens.TokenRejected) as retired:
        verifier.verify(token, clock.now() - timedelta(minutes=16))
    assert retired.value.reason == "unknown_key"


def test_wrong_audience_is_refused_even_after_a_right_one_was_memoised(tmp_path: Path) -> None:
    clock = FrozenClock()
    ring = SigningKeyring(tmp_path, "tokens", clock)
    ring.rotate()
    token = issue_for(ring, clock.now(), "acc_1")
    tokens.Verifier(ring, issuer="iss", audience="aud").verify(token, clock.now())
    with pytest.raises(tokens.TokenRejected) as caught:
        tokens.Verifier(ring, issuer="iss", audience="other").verify(token, clock.now())
    assert caught.value.reason == "wrong_audience"


def test_memo_keeps_the_parsed_principal_and_still_checks_the_clock(tmp_path: Path) -> None:
    clock = FrozenClock()
    ring = SigningKeyring(tmp_path, "tokens", clock)
    ring.rotate()
    verifier = tokens.Verifier(ring, issuer="iss", audience="aud")
    token = issue_for(ring, clock.now(), "acc_1")
    first = verifier.verify(token, clock.now())
    again = verifier.verify(token, clock.now() + timedelta(minutes=5))
    assert again is first  # parsed once; a Principal is immutable
    with pytest.raises(tokens.TokenRejected) as early:
        verifier.verify(token, clock.now() - timedelta(minutes=1))
    assert early.value.reason == "not_yet_valid"
