"""codes/verifier.py on hostile input: always a documented reason, never an exception,
never `valid` for anything but an untouched code inside its window."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from codes import codec, pseudonym, verifier
from codes.states import Reason, Status
from codes.verifier import REASONS

SIGNER = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
KEYS = verifier.key_set([verifier.TrustedKey("k1", SIGNER.public_key())])
ISSUED = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
AT = ISSUED + timedelta(seconds=5)


def make_code(
    key: ec.EllipticCurvePrivateKey = SIGNER,
    *,
    status: Status = Status.GREEN,
    issued: datetime = ISSUED,
    lifetime_s: int = 60,
    key_id: bytes | None = None,
) -> str:
    payload = codec.Payload(
        codec.TYPE_IDENTITY,
        key_id or codec.key_id_of(key.public_key()),
        int(issued.timestamp()),
        lifetime_s,
        status,
        os.urandom(16),
    )
    return codec.sign(payload, key)


CODE = make_code()
RAW = codec.b45decode(CODE[len(codec.PREFIX) :])


def check(code: str, now: datetime = AT) -> verifier.Result:
    result = verifier.verify(code, KEYS, frozenset(), now)
    assert result.reason in REASONS
    assert result.valid == (result.reason == Reason.OK)
    return result


def test_a_fresh_code_is_valid_and_says_what_it_carries() -> None:
    result = check(CODE)
    assert (result.valid, result.status, result.issued_at) == (True, "green", ISSUED)
    assert result.expires_at == ISSUED + timedelta(seconds=60)


@given(st.text(max_size=400))
def test_any_string_is_refused_with_a_reason(text: str) -> None:
    assert not check(text).valid


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=300))
def test_any_base45_text_behind_the_prefix_is_refused(text: str) -> None:
    assert not check(codec.PREFIX + text).valid


@given(st.integers(0, len(RAW) - 1), st.integers(0, 7))
def test_any_bit_flip_makes_the_code_invalid(index: int, bit: int) -> None:
    flipped = bytearray(RAW)
    flipped[index] ^= 1 << bit
    result = check(codec.PREFIX + codec.b45encode(bytes(flipped)))
    assert result.reason in {"code_malformed", "unknown_key", "signature_invalid"}


@given(st.integers(0, len(CODE) - 1))
def test_any_truncation_is_malformed_or_badly_signed(length: int) -> None:
    assert check(CODE[:length]).reason in {"code_malformed", "signature_invalid"}


@given(st.text(min_size=1, max_size=6).filter(lambda p: p != codec.PREFIX))
def test_a_wrong_prefix_is_malformed(prefix: str) -> None:
    assert check(prefix + CODE[len(codec.PREFIX) :]).reason == "code_malformed"


@given(st.sampled_from(codec.STATUSES), st.integers(-86400, 86400))
def test_altered_fields_resigned_with_another_key_are_refused(status: Status, shift: int) -> None:
    issued = ISSUED + timedelta(seconds=shift)
    claimed = make_code(
        OTHER, status=status, issued=issued, key_id=codec.key_id_of(SIGNER.public_key())
    )
    assert check(claimed, issued).reason == "signature_invalid"
    assert check(make_code(OTHER, status=status, issued=issued), issued).reason == "unknown_key"


def test_a_retired_key_verifies_inside_its_window_and_is_unknown_after() -> None:
    retired = ec.generate_private_key(ec.SECP256R1())
    window_end = ISSUED + timedelta(seconds=90)
    keys = verifier.key_set(
        [*KEYS.values(), verifier.TrustedKey("k0", retired.public_key(), window_end)]
    )
    code = make_code(retired)
    assert verifier.verify(code, keys, (), AT).reason == "ok"
    late = window_end + timedelta(seconds=1)
    assert verifier.verify(code, keys, (), late).reason == "unknown_key"


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_far_times_are_expired_or_not_yet_valid(when: datetime) -> None:
    now = when.replace(tzinfo=UTC)
    result = check(CODE, now)
    if now < ISSUED - timedelta(seconds=30):
        assert result.reason == "code_not_yet_valid"
    elif now > ISSUED + timedelta(seconds=90):
        assert result.reason == "code_expired"
    else:
        assert result.valid


@given(st.integers(0, codec.MAX_UINT32), st.integers(1, codec.MAX_LIFETIME_S))
def test_codes_issued_at_extreme_times_never_crash(issued_s: int, lifetime_s: int) -> None:
    issued = datetime.fromtimestamp(issued_s, UTC)
    code = make_code(issued=issued, lifetime_s=lifetime_s)
    assert check(code, issued).valid
    assert check(code, issued + timedelta(seconds=lifetime_s + 31)).reason == "code_expired"


def test_the_skew_allowance_is_configurable() -> None:
    late = ISSUED + timedelta(seconds=75)
    assert verifier.verify(CODE, KEYS, (), late, timedelta(seconds=30)).valid
    tight = verifier.verify(CODE, KEYS, (), late, timedelta(seconds=5))
    assert tight.reason == "code_expired"


def test_a_revoked_code_id_is_refused() -> None:
    result = check(CODE)
    assert result.code_id is not None
    assert verifier.verify(CODE, KEYS, {result.code_id}, AT).reason == "code_revoked"


def test_a_place_code_is_not_an_identity_code() -> None:
    place = codec.sign(
        codec.Payload(codec.TYPE_PLACE, codec.key_id_of(SIGNER.public_key()), 0, 0, venue_id="v1"),
        SIGNER,
    )
    assert check(place).reason == "code_malformed"
    assert verifier.verify(place, KEYS, (), AT, kind=codec.TYPE_PLACE).venue_id == "v1"


def test_keys_survive_a_trip_through_the_jwk_set() -> None:
    jwks = {"keys": [verifier.public_jwk("k1", SIGNER.public_key(), not_after=AT)]}
    keys = verifier.keys_from_jwks(jwks)
    assert verifier.verify(CODE, keys, (), AT).valid
    assert verifier.verify(CODE, keys, (), AT + timedelta(seconds=1)).reason == "unknown_key"


def test_tokens_of_one_subject_are_unlinkable_but_open_to_the_same_daily_pseudonym() -> None:
    secret, handle, day = os.urandom(32), os.urandom(8), 20468
    perm, gate = pseudonym.permutation_key(secret, day), pseudonym.gate_key(secret, day)
    pseudo = pseudonym.pseudonymise(perm, handle)
    first = pseudonym.seal(gate, pseudo, os.urandom(8))
    second = pseudonym.seal(gate, pseudo, os.urandom(8))
    assert first != second and first[:8] != second[:8]
    assert pseudonym.open_token(gate, first).pseudonym == pseudo
    assert pseudonym.depseudonymise(perm, pseudo) == handle
    tomorrow = pseudonym.pseudonymise(pseudonym.permutation_key(secret, day + 1), handle)
    assert tomorrow != pseudo


def test_replay_memory_lets_the_same_gate_rescan_and_refuses_others() -> None:
    memory = verifier.ReplayMemory()
    result = check(CODE)
    assert memory.present(result, "gate-a", AT).valid
    assert memory.present(result, "gate-a", AT).valid
    assert memory.present(result, "gate-b", AT).reason == "code_replayed"


def printed_code(issued: datetime = ISSUED) -> str:
    payload = codec.Payload(
        codec.TYPE_PRINTED,
        codec.key_id_of(SIGNER.public_key()),
        int(issued.timestamp()),
        180 * 86400,
        None,
        os.urandom(16),
    )
    return codec.sign(payload, SIGNER)


def test_a_gate_accepts_identity_and_printed_codes_and_says_which() -> None:
    card = printed_code()
    at_gate = verifier.verify(card, KEYS, frozenset(), AT, kind=verifier.GATE_KINDS)
    assert (at_gate.valid, at_gate.kind, at_gate.status) == (True, "printed", None)
    assert at_gate.expires_at == ISSUED + timedelta(days=180)
    identity = verifier.verify(CODE, KEYS, frozenset(), AT, kind=verifier.GATE_KINDS)
    assert (identity.valid, identity.kind) == (True, "identity")
    # A verifier that did not opt in (the default) refuses a card as malformed.
    assert check(card).reason == Reason.CODE_MALFORMED
    # No pseudonym to open: the id is random, not sealed with a day key.
    day = pseudonym.day_of(int(ISSUED.timestamp()))
    assert verifier.daily_pseudonym(at_gate, {day: os.urandom(32)}) is None


def test_a_replay_memory_never_consumes_a_printed_code() -> None:
    memory = verifier.ReplayMemory()
    card = verifier.verify(printed_code(), KEYS, frozenset(), AT, kind=verifier.GATE_KINDS)
    for gate in ("a", "b", "a", "c"):
        assert memory.present(card, gate, AT).reason == Reason.OK
    dynamic = verifier.verify(CODE, KEYS, frozenset(), AT, kind=verifier.GATE_KINDS)
    assert memory.present(dynamic, "a", AT).valid
    assert memory.present(dynamic, "b", AT).reason == Reason.CODE_REPLAYED
