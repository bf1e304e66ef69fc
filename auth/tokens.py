"""Access tokens: ES256 JWTs signed with the `tokens` keyring.

Verification pins everything an attacker could otherwise choose: the algorithm list
(only ES256, so `none` and HS256-with-the-public-key fail), the key (looked up by `kid`
among our own verification keys only), the audience and the issuer. Expiry is checked
against the injected clock rather than PyJWT's wall clock.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from app.keyring import SigningKeyring
from auth import scopes as sc
from auth.principal import Principal, PrincipalKind

ALGORITHM = "ES256"
ACCESS_TTL = timedelta(minutes=15)
LEEWAY = timedelta(seconds=10)
# A retired key verifies for as long as a token it signed can live.
VERIFICATION_WINDOW = ACCESS_TTL + LEEWAY
# The `knd` claim's values; a dict lookup, as every authenticated request makes it.
_KINDS: dict[str, PrincipalKind] = {kind.value: kind for kind in PrincipalKind}
# ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. Only the low-S form is
# accepted, so one token has one encoding (token memos, revocation lists and logs rely on
# the string); ours are normalised when issued.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = _P256_ORDER // 2


class TokenRejected(Exception):
    """The bearer token does not verify; `reason` says why (for logs and tests)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_in: int
    scope: str


def issue(
    ring: SigningKeyring,
    *,
    issuer: str,
    audience: str,
    now: datetime,
    principal: Principal,
    generation: int | None = None,
    ttl: timedelta = ACCESS_TTL,
) -> IssuedToken:
    """`ttl` shortens the token's life (a kiosk's delegated token); never above ACCESS_TTL,
    which retired keys' verification window assumes."""
    ttl = min(ttl, ACCESS_TTL)
    key = ring.active()
    jti = secrets.token_urlsafe(12)
    scope = sc.render(principal.scopes)
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.id,
        "scope": scope,
        "iat": iat,
        "exp": iat + int(ttl.total_seconds()),
        "jti": jti,
        "knd": principal.kind,
    }
    if principal.tenant_id is not None:
        claims["ten"] = principal.tenant_id
    if principal.subject_id is not None:
        claims["sid"] = principal.subject_id
    if principal.family_id is not None:
        claims["fam"] = principal.family_id
    if generation is not None:
        claims["gen"] = generation
    if principal.kiosk_id is not None:
        claims["act"] = principal.kiosk_id  # the kiosk acting for this resident
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
    return IssuedToken(_low_s(token), jti, int(ttl.total_seconds()), scope)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signature_s(token: str) -> int | None:
    """The S half of an ES256 JWS signature (raw r || s, 32 bytes each), None if malformed."""
    try:
        raw = _b64url_decode(token.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return None
    return int.from_bytes(raw[32:], "big") if len(raw) == 64 else None


def _low_s(token: str) -> str:
    head, sig = token.rsplit(".", 1)
    raw = _b64url_decode(sig)
    s = int.from_bytes(raw[32:], "big")
    if s <= _HALF_ORDER:
        return token
    low = raw[:32] + (_P256_ORDER - s).to_bytes(32, "big")
    return f"{head}.{base64.urlsafe_b64encode(low).rstrip(b'=').decode()}"


@dataclass(frozen=True)
class VerifiedToken:
    principal: Principal
    issued_at: int
    expires_at: int
    generation: int | None


def _verified_claims(
    ring: SigningKeyring, token: str, *, issuer: str, audience: str
) -> tuple[str, dict[str, Any]]:
    """Header, key, signature, audience and issuer checks; the claims and the key's kid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRejected("algorithm_not_allowed")

    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenRejected("unknown_key")
    key = ring.verification_keys(VERIFICATION_WINDOW).get(kid)
    if key is None:
        raise TokenRejected("unknown_key")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            # Time claims are checked in _check_claims against the injected clock.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["iss", "aud", "sub", "scope", "iat", "exp", "jti"],
            },
        )
    except jwt.InvalidAudienceError:
        raise TokenRejected("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("wrong_issuer") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("signature_invalid") from None
    except jwt.PyJWTError:
        raise TokenRejected("malformed") from None
    s = _signature_s(token)
    if s is None or s > _HALF_ORDER:
        raise TokenRejected("signature_not_canonical")
    return kid, claims


class Verifier:
    """Verifies access tokens, with a bounded memo of tokens whose signature already checked out.

    Gates and apps present the same token for up to 15 minutes, and the signature check
    is most of the cost of authenticating a request. Only the signature and the claims
    (parsed into the principal once) are remembered: the key must still be a verification
    key and the time claims are checked against the clock on every use. Forged tokens
    never enter.
    """

    def __init__(
        self, ring: SigningKeyring, *, issuer: str, audience: str, max_entries: int = 4096
    ) -> None:
        self.ring = ring
        self.issuer = issuer
        self.audience = audience
        self.max_entries = max_entries
        self._memo: dict[str, tuple[str, VerifiedToken]] = {}

    def verify(self, token: str, now: datetime) -> VerifiedToken:
        memo = self._memo.get(token)
        if memo is not None:
            kid, verified = memo
            if kid in self.ring.verification_keys(VERIFICATION_WINDOW):
                _check_times(verified.issued_at, verified.expires_at, now)
                return verified
            del self._memo[token]
        kid, claims = _verified_claims(self.ring, token, issuer=self.issuer, audience=self.audience)
        verified = _check_claims(claims, now)
        if len(self._memo) >= self.max_entries:
            # Oldest first (dicts keep insertion order): those expire soonest.
            del self._memo[next(iter(self._memo))]
        self._memo[token] = (kid, verified)
        return verified


def _check_times(iat: int, exp: int, now: datetime) -> None:
    moment = now.timestamp()
    leeway = LEEWAY.total_seconds()
    if exp + leeway <= moment:
        raise TokenRejected("expired")
    if iat - leeway > moment:
        raise TokenRejected("not_yet_valid")


def _check_claims(claims: dict[str, Any], now: datetime) -> VerifiedToken:
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise TokenRejected("malformed")
    _check_times(iat, exp, now)
    knd = claims.get("knd")
    kind = _KINDS.get(knd) if isinstance(knd, str) else None
    if kind is None or not isinstance(claims["scope"], str):
        raise TokenRejected("malformed")
    generation = claims.get("gen")
    principal = Principal(
        kind=kind,
        id=str(claims["sub"]),
        scopes=sc.parse(claims["scope"]),
        tenant_id=_opt_str(claims.get("ten")),
        subject_id=_opt_str(claims.get("sid")),
        token_id=str(claims["jti"]),
        family_id=_opt_str(claims.get("fam")),
        kiosk_id=_opt_str(claims.get("act")),
    )
    return VerifiedToken(principal, iat, exp, generation if isinstance(generation, int) else None)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
