"""The code format (docs/code-format.md): binary payload, raw r||s ECDSA P-256 signature,
Base45 (RFC 9285) behind the `SC1:` prefix. Pure: no I/O, no clock, no keys kept."""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from codes.states import Status

PREFIX = "SC1:"
VERSION = 1
TYPE_IDENTITY = 1
TYPE_PLACE = 2
TYPE_PRINTED = 3  # the long-lived printed code (离线码): no colour, lifetime in hours
STATUSES: tuple[Status, ...] = tuple(Status)  # wire values 0, 1, 2
SIGNATURE_BYTES = 64
TOKEN_BYTES = 16
MAX_VENUE_ID_BYTES = 64
# version, type, key id, issued at (unix s), lifetime (s)
HEADER = struct.Struct(">BB4sIH")
IDENTITY_BODY = struct.Struct(">B16s")  # status, subject token
IDENTITY_BYTES = HEADER.size + IDENTITY_BODY.size + SIGNATURE_BYTES
_IDENTITY_SIGNED = struct.Struct(">BB4sIHB16s")  # header + identity body, in one unpack
PRINTED_BYTES = HEADER.size + TOKEN_BYTES + SIGNATURE_BYTES
MAX_UINT32 = 0xFFFFFFFF
MAX_LIFETIME_S = 0xFFFF
# A printed code's `lifetime` field counts hours (180 days do not fit 16 bits of seconds).
PRINTED_LIFETIME_UNIT_S = 3600
MAX_PRINTED_LIFETIME_S = 0xFFFF * PRINTED_LIFETIME_UNIT_S

_ECDSA = ec.ECDSA(hashes.SHA256())
_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# ASCII byte -> base45 digit value, 0xFF for bytes outside the alphabet.
_B45_DIGITS = bytes(_B45.index(chr(b)) if chr(b) in _B45 else 0xFF for b in range(256))


class CodeFormatError(ValueError):
    """The string is not a well-formed code of a known version and type."""


class Payload(NamedTuple):
    """The signed fields. `token` is the identity code's sealed subject token (the printed
    code's random id); `venue_id` is the place code's venue. `lifetime_s` is in seconds for
    every type (the printed code's wire field counts hours). (A tuple: built on every
    verification, so cheap to build.)"""

    type: int
    key_id: bytes
    issued_at: int
    lifetime_s: int
    status: Status | None = None
    token: bytes = b""
    venue_id: str | None = None
    version: int = VERSION


class SignedCode(NamedTuple):
    payload: Payload
    signed_bytes: bytes
    signature: bytes  # raw r||s, 32 bytes each, big-endian


# -- Base45 (RFC 9285) ---------------------------------------------------------------


def b45encode(data: bytes) -> str:
    # A plain loop: a 65,536-entry lookup table measured slower inside `sign`, because it
    # evicts OpenSSL's tables from the CPU caches.
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n, c = divmod(data[i] * 256 + data[i + 1], 45)
        e, d = divmod(n, 45)
        out.append(_B45[c] + _B45[d] + _B45[e])
    if len(data) % 2:
        n = data[-1]
        out.append(_B45[n % 45] + _B45[n // 45])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Strict decoding: any character outside the alphabet, a dangling single character
    or a group above its byte range is an error (RFC 9285 section 4.2)."""
    try:
        digits = text.encode("ascii").translate(_B45_DIGITS)
    except UnicodeEncodeError:
        raise CodeFormatError("character outside the base45 alphabet") from None
    if b"\xff" in digits:
        raise CodeFormatError("character outside the base45 alphabet")
    groups, rest = divmod(len(digits), 3)
    if rest == 1:
        raise CodeFormatError("base45 length leaves a single character")
    out = _b45_groups(digits[: groups * 3], groups)
    if rest == 2:
        n = digits[-2] + digits[-1] * 45
        if n > 0xFF:
            raise CodeFormatError("base45 final group out of range")
        out.append(n)
    return bytes(out)


def _b45_groups(digits: bytes, groups: int) -> bytearray:
    # Decoding group by group in Python costs a fifth of the signature check it precedes,
    # so all groups are decoded at once: the digits read as one big integer give each
    # group a 24-bit lane (c, d, e bytes); masks pick the columns and c + 45*d + 2025*e
    # (at most 91124) never carries into the next lane.
    masks = _lane_masks(groups)
    lanes = int.from_bytes(digits, "big")
    total = ((lanes & masks[0]) >> 16) + 45 * ((lanes & masks[1]) >> 8) + 2025 * (lanes & masks[2])
    if total & masks[0]:
        raise CodeFormatError("base45 group out of range")
    # Each lane is now 0x00 hi lo: keep hi and lo.
    spread = total.to_bytes(3 * groups, "big")
    out = bytearray(2 * groups)
    out[0::2] = spread[1::3]
    out[1::2] = spread[2::3]
    return out


@lru_cache(maxsize=256)
def _lane_masks(groups: int) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int.from_bytes(bytes([0xFF if i % 3 == column else 0 for i in range(3 * groups)]), "big")
        for column in range(3)
    )


# -- keys ------------------------------------------------------------------------------


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The 4-byte key id a code names: the first bytes of SHA-256 over the uncompressed
    public point (0x04 || x || y), computable from a JWK's x and y."""
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()[:4]


# -- payload -----------------------------------------------------------------------------


def encode_payload(payload: Payload) -> bytes:
    if len(payload.key_id) != 4:
        raise ValueError("key id must be 4 bytes")
    lifetime = payload.lifetime_s
    if payload.type == TYPE_PRINTED:
        hours, rest = divmod(lifetime, PRINTED_LIFETIME_UNIT_S)
        if rest or not 0 < hours <= MAX_LIFETIME_S:
            raise ValueError("a printed code's lifetime is 1 to 65535 whole hours")
        lifetime = hours
    if not 0 <= payload.issued_at <= MAX_UINT32 or not 0 <= lifetime <= MAX_LIFETIME_S:
        raise ValueError("issued_at or lifetime out of range")
    head = HEADER.pack(payload.version, payload.type, payload.key_id, payload.issued_at, lifetime)
    if payload.type == TYPE_IDENTITY:
        if payload.status not in STATUSES or len(payload.token) != TOKEN_BYTES:
            raise ValueError("identity payload needs a status and a 16-byte token")
        return head + IDENTITY_BODY.pack(STATUSES.index(payload.status), payload.token)
    if payload.type == TYPE_PLACE:
        venue = (payload.venue_id or "").encode()
        if not 0 < len(venue) <= MAX_VENUE_ID_BYTES:
            raise ValueError("place payload needs a venue id of 1 to 64 bytes")
        return head + venue
    if payload.type == TYPE_PRINTED:
        if payload.status is not None or len(payload.token) != TOKEN_BYTES:
            raise ValueError("printed payload needs a 16-byte id and carries no status")
        return head + payload.token
    raise ValueError(f"unknown code type {payload.type}")


def decode_payload(data: bytes) -> Payload:
    if len(data) < HEADER.size:
        raise CodeFormatError("payload shorter than its header")
    version, kind, key_id, issued_at, lifetime_s = HEADER.unpack_from(data)
    if version != VERSION:
        raise CodeFormatError(f"unknown version {version}")
    body = data[HEADER.size :]
    if kind == TYPE_IDENTITY:
        if len(body) != IDENTITY_BODY.size:
            raise CodeFormatError("identity payload has the wrong length")
        status, token = IDENTITY_BODY.unpack(body)
        if status >= len(STATUSES):
            raise CodeFormatError(f"unknown status {status}")
        if lifetime_s == 0:
            raise CodeFormatError("identity code with zero lifetime")
        return Payload(kind, key_id, issued_at, lifetime_s, STATUSES[status], token)
    if kind == TYPE_PLACE:
        if not 0 < len(body) <= MAX_VENUE_ID_BYTES:
            raise CodeFormatError("place payload has the wrong length")
        try:
            venue_id = body.decode()
        except UnicodeDecodeError:
            raise CodeFormatError("venue id is not UTF-8") from None
        return Payload(kind, key_id, issued_at, lifetime_s, venue_id=venue_id)
    if kind == TYPE_PRINTED:
        if len(body) != TOKEN_BYTES:
            raise CodeFormatError("printed payload has the wrong length")
        if lifetime_s == 0:
            raise CodeFormatError("printed code with zero lifetime")
        return Payload(kind, key_id, issued_at, lifetime_s * PRINTED_LIFETIME_UNIT_S, token=body)
    raise CodeFormatError(f"unknown type {kind}")


# -- the code string -----------------------------------------------------------------------


def sign(payload: Payload, private_key: ec.EllipticCurvePrivateKey) -> str:
    data = encode_payload(payload)
    r, s = decode_dss_signature(private_key.sign(data, _ECDSA))
    return PREFIX + b45encode(data + r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def assemble(signed_bytes: bytes, signature: bytes) -> str:
    """A code from already-encoded parts (test vectors and tests that forge codes)."""
    return PREFIX + b45encode(signed_bytes + signature)


def decode(code: str) -> SignedCode:
    """Split a code string into its payload and signature; raises CodeFormatError."""
    if not isinstance(code, str) or not code.startswith(PREFIX):
        raise CodeFormatError("missing the SC1: prefix")
    # The longest legal code (a place code with a 64-byte venue id) is 215 characters.
    if len(code) > 256:
        raise CodeFormatError("code too long")
    raw = b45decode(code[len(PREFIX) :])
    if len(raw) == IDENTITY_BYTES:
        # The common case in one unpack: every verification starts here.
        version, kind, key_id, issued_at, lifetime_s, status, token = _IDENTITY_SIGNED.unpack_from(
            raw
        )
        if version == VERSION and kind == TYPE_IDENTITY and status < 3 and lifetime_s:
            payload = Payload(kind, key_id, issued_at, lifetime_s, STATUSES[status], token)
            cut = _IDENTITY_SIGNED.size
            return SignedCode(payload, raw[:cut], raw[cut:])
    if len(raw) <= SIGNATURE_BYTES + HEADER.size - 1:
        raise CodeFormatError("code too short")
    signed, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    return SignedCode(decode_payload(signed), signed, signature)


def _der_integer(value: bytes) -> bytes:
    # DER INTEGER contents: minimal big-endian, a leading zero when the high bit is set.
    value = value.lstrip(b"\0")
    if not value or value[0] & 0x80:
        value = b"\0" + value
    return value


def der_signature(raw: bytes) -> bytes:
    """Raw r || s as the DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs) OpenSSL takes."""
    r, s = _der_integer(raw[:32]), _der_integer(raw[32:])
    return b"".join((b"\x30", bytes((len(r) + len(s) + 4, 2, len(r))), r, bytes((2, len(s))), s))


def signature_valid(signed: SignedCode, public_key: ec.EllipticCurvePublicKey) -> bool:
    try:
        public_key.verify(der_signature(signed.signature), signed.signed_bytes, _ECDSA)
    except Exception:  # InvalidSignature, or r/s out of range for the curve
        return False
    return True
