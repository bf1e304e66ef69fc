"""Writes the code-format test vectors (tests/vectors/*.json) from fixed keys and times.

Run `.venv/bin/python -m tests.vectors.generate`; tests/codes/test_vectors.py checks every
vector against codes/verifier.py. ECDSA signatures are randomised, so regenerating changes
the code strings but never the expected results.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from codes import codec, pseudonym
from codes.states import Status
from codes.verifier import public_jwk

HERE = Path(__file__).resolve().parent
ISSUED = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
LIFETIME_S = 60
SKEW_S = 30


def fixed_key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big")
    # Reduce into [1, n-1]; the curve order of P-256.
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(scalar % (n - 1) + 1, ec.SECP256R1())


SIGNER = fixed_key("suishen test vector signing key 1")
OTHER = fixed_key("suishen test vector other key")
RETIRED = fixed_key("suishen test vector retired key")
SECRET = hashlib.sha256(b"suishen test vector token secret").digest()
HANDLE = bytes.fromhex("0123456789abcdef")
NONCE = bytes.fromhex("a1a2a3a4a5a6a7a8")
# A printed code's id is 16 random bytes; fixed here so the vectors are reproducible.
PRINTED_ID = bytes.fromhex("5c0de0ff1ce0c0de5c0de0ff1ce0c0de")
PRINTED_LIFETIME = timedelta(days=180)


def rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def token_for(issued: datetime) -> tuple[bytes, int]:
    day = pseudonym.day_of(int(issued.timestamp()))
    pseudo = pseudonym.pseudonymise(pseudonym.permutation_key(SECRET, day), HANDLE)
    return pseudonym.seal(pseudonym.gate_key(SECRET, day), pseudo, NONCE), day


def identity(
    key: ec.EllipticCurvePrivateKey,
    *,
    issued: datetime = ISSUED,
    status: Status = Status.GREEN,
    key_id: bytes | None = None,
) -> codec.Payload:
    token, _ = token_for(issued)
    return codec.Payload(
        codec.TYPE_IDENTITY,
        key_id or codec.key_id_of(key.public_key()),
        int(issued.timestamp()),
        LIFETIME_S,
        status,
        token,
    )


def printed(
    key: ec.EllipticCurvePrivateKey,
    *,
    issued: datetime = ISSUED,
    lifetime: timedelta = PRINTED_LIFETIME,
) -> codec.Payload:
    return codec.Payload(
        codec.TYPE_PRINTED,
        codec.key_id_of(key.public_key()),
        int(issued.timestamp()),
        int(lifetime.total_seconds()),
        None,
        PRINTED_ID,
    )


def printed_vectors() -> list[dict[str, Any]]:
    code = codec.sign(printed(SIGNER), SIGNER)
    at = ISSUED + timedelta(seconds=10)
    expires = ISSUED + PRINTED_LIFETIME
    details = {
        "type": "printed",
        "issued_at": rfc3339(ISSUED),
        "expires_at": rfc3339(expires),
        "code_id": PRINTED_ID.hex(),
    }
    raw = codec.b45decode(code[len(codec.PREFIX) :])
    flipped = bytearray(raw)
    flipped[14] ^= 0x01  # inside the id
    signed = raw[: -codec.SIGNATURE_BYTES]
    zero_lifetime = signed[:10] + bytes(2) + signed[12:]
    retired_at = ISSUED - timedelta(days=30)
    old_issue = ISSUED - timedelta(days=40)
    old_code = codec.sign(printed(RETIRED, issued=old_issue), RETIRED)
    # The retired key's window for dynamic codes closed long ago; for printed codes it
    # stays open for the longest printed lifetime after its retirement.
    retired_jwks = jwks(
        TRUSTED["keys"][0],
        public_jwk(
            "vector-key-0",
            RETIRED.public_key(),
            not_after=retired_at + timedelta(seconds=LIFETIME_S + SKEW_S),
            printed_not_after=retired_at + PRINTED_LIFETIME + timedelta(seconds=SKEW_S),
        ),
    )
    return [
        vector(
            "valid-printed",
            "A printed code (type 3, no colour, lifetime 4320 hours = 180 days), verified "
            "10 s after issue. The replay rule does not apply: every presentation, at any "
            "verifier, gets the same answer.",
            code,
            now=at,
            kind="printed",
            reason="ok",
            expected=details,
            presentations=[
                {"verifier": "gate-a", "reason": "ok"},
                {"verifier": "gate-b", "reason": "ok"},
                {"verifier": "gate-a", "reason": "ok"},
            ],
        ),
        vector(
            "printed-valid-at-edge",
            "Verified exactly lifetime + skew after issue: still valid.",
            code,
            now=expires + timedelta(seconds=SKEW_S),
            kind="printed",
            reason="ok",
            expected=details,
        ),
        vector(
            "printed-expired",
            "One second past lifetime + skew.",
            code,
            now=expires + timedelta(seconds=SKEW_S + 1),
            kind="printed",
            reason="code_expired",
        ),
        vector(
            "printed-revoked",
            "The printed code's id is in the revocation set (reissued, or revoked from the "
            "app or a kiosk): a photocopy of the card is refused too.",
            code,
            now=at + timedelta(days=3),
            kind="printed",
            revoked=[PRINTED_ID.hex()],
            reason="code_revoked",
        ),
        vector(
            "printed-signature-invalid",
            "One bit of the printed code's id flipped.",
            codec.PREFIX + codec.b45encode(bytes(flipped)),
            now=at,
            kind="printed",
            reason="signature_invalid",
        ),
        vector(
            "printed-malformed-zero-lifetime",
            "A printed code with lifetime 0 (only place codes may omit an expiry).",
            codec.assemble(zero_lifetime, raw[-codec.SIGNATURE_BYTES :]),
            now=at,
            kind="printed",
            reason="code_malformed",
        ),
        vector(
            "printed-at-identity-verifier",
            "A verifier that expects identity codes only (type 1) refuses a printed code "
            "as malformed; gates accept types 1 and 3.",
            code,
            now=at,
            kind="identity",
            reason="code_malformed",
        ),
        vector(
            "printed-retired-key",
            "Signed 40 days ago by a key retired 30 days ago: past the key's `exp` but "
            "within its `printed_exp`, so the printed code is still valid.",
            old_code,
            now=at,
            keys=retired_jwks,
            kind="printed",
            reason="ok",
            expected={
                "type": "printed",
                "issued_at": rfc3339(old_issue),
                "expires_at": rfc3339(old_issue + PRINTED_LIFETIME),
                "code_id": PRINTED_ID.hex(),
            },
        ),
        vector(
            "printed-retired-key-past-printed-exp",
            "The same code verified after the retired key's `printed_exp`.",
            old_code,
            now=retired_at + PRINTED_LIFETIME + timedelta(seconds=SKEW_S + 1),
            keys=retired_jwks,
            kind="printed",
            reason="unknown_key",
        ),
    ]


def jwks(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(entries)}


TRUSTED = jwks(public_jwk("vector-key-1", SIGNER.public_key()))


def vector(
    name: str,
    description: str,
    code: str,
    *,
    now: datetime,
    reason: str,
    keys: dict[str, Any] = TRUSTED,
    revoked: list[str] | None = None,
    kind: str = "identity",
    expected: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "jwks": keys,
        "kind": kind,
        "code": code,
        "now": rfc3339(now),
        "skew_s": SKEW_S,
        "revoked": revoked or [],
        "expected": {"valid": reason == "ok", "reason": reason, **(expected or {})},
        **extra,
    }


def build() -> list[dict[str, Any]]:
    good = identity(SIGNER)
    code = codec.sign(good, SIGNER)
    token, day = token_for(ISSUED)
    signed = codec.encode_payload(good)
    raw = codec.b45decode(code[len(codec.PREFIX) :])
    signature = raw[len(signed) :]
    at = ISSUED + timedelta(seconds=10)
    expires = ISSUED + timedelta(seconds=LIFETIME_S)
    details = {
        "type": "identity",
        "status": "green",
        "issued_at": rfc3339(ISSUED),
        "expires_at": rfc3339(expires),
        "code_id": token.hex(),
    }
    forged = codec.encode_payload(identity(SIGNER, status=Status.RED))
    flipped = bytearray(raw)
    flipped[20] ^= 0x01
    retired_jwks = jwks(
        TRUSTED["keys"][0],
        public_jwk("vector-key-0", RETIRED.public_key(), not_after=ISSUED - timedelta(hours=1)),
    )
    place = codec.sign(
        codec.Payload(
            codec.TYPE_PLACE,
            codec.key_id_of(SIGNER.public_key()),
            1767225600,
            0,
            None,
            b"",
            "venue_demo_museum",
        ),
        SIGNER,
    )
    return [
        vector(
            "valid-identity",
            "A fresh identity code, verified 10 s after issue. The gate key opens its token "
            "to the holder's pseudonym of the day.",
            code,
            now=at,
            reason="ok",
            expected={
                **details,
                "daily_pseudonym": pseudonym.pseudonymise(
                    pseudonym.permutation_key(SECRET, day), HANDLE
                ).hex(),
            },
            gate_keys={str(day): pseudonym.gate_key(SECRET, day).hex()},
        ),
        vector(
            "valid-at-skew-edge",
            "Verified exactly lifetime + skew after issue: still valid.",
            code,
            now=expires + timedelta(seconds=SKEW_S),
            reason="ok",
            expected=details,
        ),
        vector(
            "code-expired",
            "One second past lifetime + skew.",
            code,
            now=expires + timedelta(seconds=SKEW_S + 1),
            reason="code_expired",
        ),
        vector(
            "code-not-yet-valid",
            "The verifier's clock is more than the skew behind the issuer's.",
            code,
            now=ISSUED - timedelta(seconds=SKEW_S + 1),
            reason="code_not_yet_valid",
        ),
        vector(
            "code-revoked",
            "The code's id is in the revocation set (GET /v1/codes/revocations).",
            code,
            now=at,
            revoked=[token.hex()],
            reason="code_revoked",
        ),
        vector(
            "signature-invalid-altered-status",
            "The status byte was changed from green to red; the signature is the original.",
            codec.assemble(forged, signature),
            now=at,
            reason="signature_invalid",
        ),
        vector(
            "signature-invalid-flipped-bit",
            "One bit of the subject token flipped.",
            codec.PREFIX + codec.b45encode(bytes(flipped)),
            now=at,
            reason="signature_invalid",
        ),
        vector(
            "signature-invalid-other-signer",
            "Altered fields re-signed with another key, naming the trusted key's id.",
            codec.sign(identity(OTHER, status=Status.RED, key_id=good.key_id), OTHER),
            now=at,
            reason="signature_invalid",
        ),
        vector(
            "unknown-key",
            "Signed by a key the verifier does not trust.",
            codec.sign(identity(OTHER), OTHER),
            now=at,
            reason="unknown_key",
        ),
        vector(
            "unknown-key-retired-and-expired",
            "Signed by a retired key whose verification window (`exp`) has closed.",
            codec.sign(identity(RETIRED, issued=ISSUED - timedelta(hours=2)), RETIRED),
            now=ISSUED - timedelta(hours=2) + timedelta(seconds=10) + timedelta(hours=1),
            keys=retired_jwks,
            reason="unknown_key",
        ),
        vector(
            "code-malformed-prefix",
            "Wrong prefix.",
            "HC1:" + code[len(codec.PREFIX) :],
            now=at,
            reason="code_malformed",
        ),
        vector(
            "code-malformed-base45",
            "A lower-case letter is outside the Base45 alphabet.",
            code[:-1] + "a",
            now=at,
            reason="code_malformed",
        ),
        vector(
            "code-malformed-truncated",
            "The last 3 characters (2 bytes of the signature) are missing.",
            code[:-3],
            now=at,
            reason="code_malformed",
        ),
        vector(
            "code-malformed-version",
            "Version byte 2 is unknown to a version 1 verifier.",
            codec.assemble(bytes([2]) + signed[1:], signature),
            now=at,
            reason="code_malformed",
        ),
        vector(
            "code-replayed",
            "Replay rule (online, and an offline gate's own memory): the first successful "
            "presentation consumes the code; the same verifier again gets the same answer; "
            "another verifier gets code_replayed.",
            code,
            now=at,
            reason="ok",
            expected=details,
            presentations=[
                {"verifier": "gate-a", "reason": "ok"},
                {"verifier": "gate-a", "reason": "ok"},
                {"verifier": "gate-b", "reason": "code_replayed"},
            ],
        ),
        vector(
            "valid-place",
            "A venue's static place code: type 2, lifetime 0 (does not expire).",
            place,
            now=at,
            kind="place",
            reason="ok",
            expected={"type": "place", "venue_id": "venue_demo_museum"},
        ),
        *printed_vectors(),
    ]


def main() -> None:
    for old in HERE.glob("*.json"):
        old.unlink()
    for item in build():
        path = HERE / f"{item['name']}.json"
        path.write_text(json.dumps(item, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
