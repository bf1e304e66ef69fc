"""The pure verifier: given trusted public keys, a revocation set and the time, decide a code.

No I/O: the server (`codes.verifying.verify_code`) and offline gates run this same function.
Checks run in a fixed order and the first failure is the reason (docs/code-format.md):
format -> key -> signature -> not yet valid -> expired -> revoked.
"""

from __future__ import annotations

import base64
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec

from codes import codec
from codes.pseudonym import day_of, open_token
from codes.states import Reason, Status

# What this module and a replay memory can decide: every reason but the online-only
# status_changed.
REASONS = tuple(r for r in Reason if r is not Reason.STATUS_CHANGED)
DEFAULT_SKEW = timedelta(seconds=30)
# What a gate accepts: a resident's dynamic identity code or a printed code.
GATE_KINDS = frozenset({codec.TYPE_IDENTITY, codec.TYPE_PRINTED})
KIND_NAMES = {
    codec.TYPE_IDENTITY: "identity",
    codec.TYPE_PLACE: "place",
    codec.TYPE_PRINTED: "printed",
}


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key a verifier accepts; `not_after` ends a retired key's verification window,
    `printed_not_after` (when set) its window for printed codes, which live for months."""

    kid: str
    public_key: ec.EllipticCurvePublicKey
    not_after: datetime | None = None
    key_id: bytes = field(default=b"")
    printed_not_after: datetime | None = None

    def __post_init__(self) -> None:
        if not self.key_id:
            object.__setattr__(self, "key_id", codec.key_id_of(self.public_key))


KeySet = Mapping[bytes, TrustedKey]


def key_set(keys: Iterable[TrustedKey]) -> dict[bytes, TrustedKey]:
    return {k.key_id: k for k in keys}


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _b64url_int(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def public_jwk(
    kid: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    not_after: datetime | None = None,
    printed_not_after: datetime | None = None,
) -> dict[str, Any]:
    """The JWK (RFC 7517) of a code signing key, with the 4-byte key id codes carry in
    `code_kid` (hex) and, for a retired key, `exp`: when to stop trusting it, and
    `printed_exp`: when to stop trusting it for printed codes."""
    numbers = public_key.public_numbers()
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": kid,
        "x": _b64url_int(numbers.x),
        "y": _b64url_int(numbers.y),
        "code_kid": codec.key_id_of(public_key).hex(),
    }
    if not_after is not None:
        jwk["exp"] = int(not_after.timestamp())
    if printed_not_after is not None:
        jwk["printed_exp"] = int(printed_not_after.timestamp())
    return jwk


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[bytes, TrustedKey]:
    """Trusted keys from the JWK Set served at GET /v1/codes/keys (or an offline bundle).
    A key with `exp` (unix seconds) is trusted only until then; with `printed_exp`, printed
    codes it signed are trusted until that time instead."""
    keys = []
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            continue
        x = int.from_bytes(_b64url(jwk["x"]), "big")
        y = int.from_bytes(_b64url(jwk["y"]), "big")
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        exp = jwk.get("exp")
        not_after = datetime.fromtimestamp(int(exp), UTC) if exp is not None else None
        printed_exp = jwk.get("printed_exp")
        printed = datetime.fromtimestamp(int(printed_exp), UTC) if printed_exp is not None else None
        keys.append(TrustedKey(str(jwk["kid"]), public, not_after, printed_not_after=printed))
    return key_set(keys)


class Result(NamedTuple):
    """The decision. The payload fields are set whenever the code decoded, even if invalid.
    (A tuple of plain values: built on every verification, so it must be cheap to build.)"""

    valid: bool
    reason: Reason
    type: int | None = None
    status: Status | None = None  # the colour the code carries (its status at issue time)
    issued_at_s: int | None = None
    lifetime_s: int = 0  # 0: does not expire (place codes); in seconds for every type
    code_id: str | None = None  # hex of the sealed token: what replay and revocation key on
    kid: str | None = None
    token: bytes = b""
    venue_id: str | None = None

    @property
    def kind(self) -> str | None:
        """ "identity", "printed" or "place"; None when the code did not decode."""
        return KIND_NAMES.get(self.type) if self.type is not None else None

    @property
    def issued_at(self) -> datetime | None:
        if self.issued_at_s is None:
            return None
        return datetime.fromtimestamp(self.issued_at_s, UTC)

    @property
    def expires_at(self) -> datetime | None:
        if self.issued_at_s is None or not self.lifetime_s:
            return None
        return datetime.fromtimestamp(self.issued_at_s + self.lifetime_s, UTC)

    def refused(self, reason: Reason) -> Result:
        return self._replace(valid=False, reason=reason)


def _decided(valid: bool, reason: Reason, payload: codec.Payload, kid: str | None = None) -> Result:
    return Result(
        valid,
        reason,
        payload.type,
        payload.status,
        payload.issued_at,
        payload.lifetime_s,
        payload.token.hex() if payload.token else None,
        kid,
        payload.token,
        payload.venue_id,
    )


def verify(
    code: str,
    keys: KeySet,
    revoked: Container[str],
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
    *,
    kind: int | frozenset[int] = codec.TYPE_IDENTITY,
) -> Result:
    """Decide `code` at `now`. `revoked` holds revoked code ids (hex tokens); `skew` is how
    far the issuer's and the verifier's clocks may disagree; `kind` the type (or the set of
    types, e.g. GATE_KINDS) the verifier expects. Never raises."""
    try:
        signed = codec.decode(code)
    except (codec.CodeFormatError, ValueError, TypeError):
        return Result(False, Reason.CODE_MALFORMED)
    payload = signed.payload
    if payload.type != kind and (isinstance(kind, int) or payload.type not in kind):
        return _decided(False, Reason.CODE_MALFORMED, payload)
    trusted = keys.get(payload.key_id)
    if trusted is None:
        return _decided(False, Reason.UNKNOWN_KEY, payload)
    not_after = trusted.not_after
    if payload.type == codec.TYPE_PRINTED and trusted.printed_not_after is not None:
        not_after = trusted.printed_not_after
    if not_after is not None and now > not_after:
        return _decided(False, Reason.UNKNOWN_KEY, payload)
    kid = trusted.kid
    if not codec.signature_valid(signed, trusted.public_key):
        return _decided(False, Reason.SIGNATURE_INVALID, payload, kid)
    skew_s = skew.total_seconds()
    now_s = now.timestamp()
    if payload.issued_at > now_s + skew_s:
        return _decided(False, Reason.CODE_NOT_YET_VALID, payload, kid)
    if payload.lifetime_s and now_s > payload.issued_at + payload.lifetime_s + skew_s:
        return _decided(False, Reason.CODE_EXPIRED, payload, kid)
    result = _decided(True, Reason.OK, payload, kid)
    if result.code_id is not None and result.code_id in revoked:
        return result.refused(Reason.CODE_REVOKED)
    return result


def daily_pseudonym(result: Result, gate_keys: Mapping[int, bytes]) -> str | None:
    """For an offline gate: the holder's pseudonym of the code's day (hex), opened with the
    day's gate key from the bundle; matches the bundle's reservation entries. None when the
    code is not a valid identity code (a printed code's id is random, not a sealed pseudonym)
    or the bundle lacks that day's key."""
    if not result.valid or result.issued_at is None or result.type != codec.TYPE_IDENTITY:
        return None
    key = gate_keys.get(day_of(int(result.issued_at.timestamp())))
    if key is None:
        return None
    return open_token(key, result.token).pseudonym.hex()


class ReplayMemory:
    """The replay rule for one offline gate (the server keeps the same rule in Redis): the
    first successful presentation consumes the code; the same verifier presenting it again
    within its lifetime is answered as before, any other verifier gets `code_replayed`.
    Printed codes are shown for months at many gates: the rule does not apply to them."""

    def __init__(self, skew: timedelta = DEFAULT_SKEW) -> None:
        self.skew = skew
        self._seen: dict[str, tuple[str, datetime]] = {}

    def present(self, result: Result, verifier_id: str, now: datetime) -> Result:
        if not result.valid or result.code_id is None or result.type == codec.TYPE_PRINTED:
            return result
        for code_id in [c for c, (_, until) in self._seen.items() if until < now]:
            del self._seen[code_id]
        seen = self._seen.get(result.code_id)
        if seen is None:
            until = result.expires_at or now
            self._seen[result.code_id] = (verifier_id, until + self.skew)
            return result
        if seen[0] == verifier_id:
            return result
        return result.refused(Reason.CODE_REPLAYED)
