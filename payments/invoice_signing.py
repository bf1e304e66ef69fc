"""The hospitals' invoice signing keys and the signature of an e-invoice (pure but for the
one secret they are derived from).

Each hospital signs with its own ECDSA P-256 key, derived from the platform secret
`invoices` (KEY_DIR/secrets/invoices.key) with HKDF-SHA256 over the hospital id and a key
version, so no per-hospital private key is stored and anyone holding the public key (the
JWK the API publishes) can check a signature. Verification pins ES256: any other `alg`,
any other curve, a malformed signature, all fail.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.context import AppContext
from app.keyring import KeyringError

ALG = "ES256"
SECRET = "invoices"  # noqa: S105 (the name of a secret file, not a secret)
KEY_VERSION = 1
# The order of the P-256 group: a private scalar is in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def master_secret(ctx: AppContext) -> bytes:
    """The platform secret the hospitals' keys come from. Made on first use outside
    production; production refuses a missing or generated one (`suishen keys init`-style:
    an operator writes 32 random bytes, hex, to KEY_DIR/secrets/invoices.key)."""
    store = ctx.keys.secrets
    if ctx.settings.is_production:
        if not store.path(SECRET).exists() or store.is_generated(SECRET):
            raise KeyringError(
                f"APP_ENV=production needs an operator-made secret at {store.path(SECRET)}"
            )
        return store.get(SECRET)
    return store.ensure(SECRET, generated=True)


def kid_of(hospital_id: str, version: int = KEY_VERSION) -> str:
    return f"invoice:{hospital_id}:v{version}"


@lru_cache(maxsize=1024)
def hospital_key(
    master: bytes, hospital_id: str, version: int = KEY_VERSION
) -> ec.EllipticCurvePrivateKey:
    # 48 bytes reduced mod n-1: the bias of the reduction is below 2^-128.
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=48,
        salt=b"suishen invoice signing key",
        info=f"{hospital_id}|v{version}".encode(),
    ).derive(master)
    scalar = int.from_bytes(okm, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def canonical(content: dict[str, Any]) -> bytes:
    """The bytes that are signed: UTF-8 JSON, keys sorted, no spaces (RFC 8785-like for
    the strings and integers an invoice holds)."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: ec.EllipticCurvePrivateKey, content: dict[str, Any]) -> str:
    """ES256 over the canonical content, as JWS does it: r || s, 32 bytes each, base64url."""
    r, s = decode_dss_signature(key.sign(canonical(content), ec.ECDSA(hashes.SHA256())))
    return _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def verify(
    public_key: ec.EllipticCurvePublicKey, content: dict[str, Any], signature: str, alg: str
) -> bool:
    """True only for an ES256 signature by this P-256 key over exactly this content."""
    if alg != ALG or not isinstance(public_key.curve, ec.SECP256R1):
        return False
    try:
        raw = _unb64(signature)
    except ValueError:
        return False
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, canonical(content), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class PublicJwk:
    kid: str
    x: str
    y: str

    def as_dict(self) -> dict[str, str]:
        return {"kty": "EC", "crv": "P-256", "alg": ALG, "use": "sig", "kid": self.kid,
                "x": self.x, "y": self.y}  # fmt: skip


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> PublicJwk:
    numbers = key.public_key().public_numbers()
    return PublicJwk(kid, _b64(numbers.x.to_bytes(32, "big")), _b64(numbers.y.to_bytes(32, "big")))


def check_code(signature: str) -> str:
    """The 校验码 printed on the paper: 6 characters taken from the signature, so a number
    alone (numbers are sequential) never opens an invoice at the public endpoint."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(signature.encode())
    return base64.b32encode(digest.finalize()).decode()[:6]
