"""codes/codec.py: Base45 per RFC 9285, the payload layout, and the size goal."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import qrcode
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from codes import codec
from codes.states import Status

KEY = ec.generate_private_key(ec.SECP256R1())
KEY_ID = codec.key_id_of(KEY.public_key())


def identity_payload(
    *, status: Status = Status.GREEN, issued_at: int = 1768467600, lifetime_s: int = 60
) -> codec.Payload:
    return codec.Payload(codec.TYPE_IDENTITY, KEY_ID, issued_at, lifetime_s, status, os.urandom(16))


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
    ],
)
def test_base45_matches_rfc_9285_examples(raw: bytes, encoded: str) -> None:
    assert codec.b45encode(raw) == encoded
    assert codec.b45decode(encoded) == raw


@given(st.binary(max_size=300))
def test_base45_round_trips_any_bytes(data: bytes) -> None:
    assert codec.b45decode(codec.b45encode(data)) == data


@pytest.mark.parametrize("text", ["GGW", "A", "ZZ", "abc", "é12", "000GGW", "::"])
def test_base45_rejects_what_rfc_9285_forbids(text: str) -> None:
    with pytest.raises(codec.CodeFormatError):
        codec.b45decode(text)


@given(
    status=st.sampled_from(codec.STATUSES),
    issued_at=st.integers(0, codec.MAX_UINT32),
    lifetime_s=st.integers(1, codec.MAX_LIFETIME_S),
)
def test_identity_payload_round_trips(status: Status, issued_at: int, lifetime_s: int) -> None:
    payload = identity_payload(status=status, issued_at=issued_at, lifetime_s=lifetime_s)
    signed = codec.decode(codec.sign(payload, KEY))
    assert signed.payload == payload
    assert codec.signature_valid(signed, KEY.public_key())


def test_place_payload_round_trips_with_unicode_venue_id() -> None:
    payload = codec.Payload(codec.TYPE_PLACE, KEY_ID, 1768467600, 0, venue_id="博物馆-1")
    assert codec.decode(codec.sign(payload, KEY)).payload == payload


def qr_version(text: str) -> int:
    qr = qrcode.QRCode(version=None, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    version: int = qr.version
    return version


@settings(max_examples=40, deadline=None)
@given(
    status=st.sampled_from(codec.STATUSES),
    issued_at=st.integers(0, codec.MAX_UINT32),
    lifetime_s=st.integers(1, codec.MAX_LIFETIME_S),
)
def test_every_identity_code_fits_150_chars_and_qr_version_6_at_m(
    status: Status, issued_at: int, lifetime_s: int
) -> None:
    code = codec.sign(
        identity_payload(status=status, issued_at=issued_at, lifetime_s=lifetime_s), KEY
    )
    assert len(code) <= 150
    assert qr_version(code) <= 6


def test_identity_code_is_qr_alphanumeric_and_of_fixed_length() -> None:
    code = codec.sign(identity_payload(), KEY)
    alphanumeric = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert set(code) <= alphanumeric
    assert len(code) == len(codec.PREFIX) + (codec.IDENTITY_BYTES // 2) * 3 + 2


def test_an_es256_jwt_of_the_same_claims_needs_a_bigger_symbol() -> None:
    # The comparison docs/code-format.md makes: why not a JWT.
    import jwt

    claims = {
        "kid": KEY_ID.hex(),
        "sub": os.urandom(16).hex(),
        "iat": int(datetime.now(UTC).timestamp()),
        "exp": int(datetime.now(UTC).timestamp()) + 60,
        "st": "green",
    }
    token = jwt.encode(claims, KEY, algorithm="ES256")
    assert qr_version(token) >= 10 > 6 >= qr_version(codec.sign(identity_payload(), KEY))


def test_encode_refuses_fields_out_of_range() -> None:
    with pytest.raises(ValueError):
        codec.encode_payload(identity_payload(status="purple"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.encode_payload(identity_payload(issued_at=-1))
    with pytest.raises(ValueError):
        codec.encode_payload(codec.Payload(codec.TYPE_PLACE, KEY_ID, 0, 0, venue_id="x" * 65))


@given(hours=st.integers(1, codec.MAX_LIFETIME_S), issued_at=st.integers(0, codec.MAX_UINT32))
@settings(max_examples=50)
def test_printed_payload_round_trips_with_its_lifetime_in_hours(hours: int, issued_at: int) -> None:
    payload = codec.Payload(
        codec.TYPE_PRINTED, KEY_ID, issued_at, hours * 3600, None, os.urandom(16)
    )
    code = codec.sign(payload, KEY)
    assert codec.decode(code).payload == payload
    # 92 bytes, 142 characters: a version 6 symbol at M, like an identity code.
    assert len(code) == 142 and qr_version(code) <= 6
    raw = codec.b45decode(code[len(codec.PREFIX) :])
    assert int.from_bytes(raw[10:12], "big") == hours  # the wire field counts hours


def test_a_printed_payload_takes_whole_hours_and_no_colour() -> None:
    token = os.urandom(16)
    for bad in (
        codec.Payload(codec.TYPE_PRINTED, KEY_ID, 0, 5400, None, token),  # 1.5 hours
        codec.Payload(codec.TYPE_PRINTED, KEY_ID, 0, 0, None, token),
        codec.Payload(codec.TYPE_PRINTED, KEY_ID, 0, 3600, Status.GREEN, token),
        codec.Payload(codec.TYPE_PRINTED, KEY_ID, 0, 65536 * 3600, None, token),
    ):
        with pytest.raises(ValueError):
            codec.encode_payload(bad)
