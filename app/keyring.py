"""Signing keys and secrets kept in files under KEY_DIR, outside the repository.

Each purpose (`tokens`, `codes`, ...) has a directory with one PEM file per ECDSA P-256
key and a `keyring.json` index saying which key signs and when the others retired.
Symmetric secrets (PII encryption, blind index, ...) are 32 random bytes per file.

Keys made automatically on a dev start are marked `origin: generated`; production
refuses them, so a real deployment's keys always come from `suishen keys rotate`.
Running processes re-read the index when it changes, so a rotation reaches every
process on the machine without a restart.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.clock import Clock

GENERATED = "generated"
OPERATOR = "operator"


class KeyringError(RuntimeError):
    """Keys are missing or not acceptable in this environment."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    created_at: datetime
    retired_at: datetime | None
    origin: str

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def new_kid(created_at: datetime) -> str:
    # Sortable by creation, unguessable enough to never collide between rotations.
    return f"{created_at:%Y%m%d}-{secrets.token_hex(3)}"


class SigningKeyring:
    """The ECDSA P-256 keys of one purpose: the active signer and retired verifiers."""

    _RELOAD_CHECK_S = 1.0

    def __init__(self, key_dir: Path, purpose: str, clock: Clock) -> None:
        self.purpose = purpose
        self.dir = key_dir / purpose
        self.index_path = self.dir / "keyring.json"
        self.clock = clock
        self._keys: list[SigningKey] = []
        self._mtime: float | None = None
        self._checked_at = 0.0

    # -- reading --

    def _load(self) -> None:
        if not self.index_path.exists():
            self._keys, self._mtime = [], None
            return
        index = json.loads(self.index_path.read_text())
        keys = []
        for entry in index["keys"]:
            pem = (self.dir / f"{entry['kid']}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1
            ):
                raise KeyringError(f"{self.purpose} key {entry['kid']} is not an ECDSA P-256 key")
            keys.append(
                SigningKey(
                    kid=entry["kid"],
                    private_key=private,
                    created_at=datetime.fromisoformat(entry["created_at"]),
                    retired_at=(
                        datetime.fromisoformat(entry["retired_at"])
                        if entry.get("retired_at")
                        else None
                    ),
                    origin=entry.get("origin", OPERATOR),
                )
            )
        self._keys = keys
        self._mtime = self.index_path.stat().st_mtime

    def _fresh(self) -> list[SigningKey]:
        now = time.monotonic()
        if now - self._checked_at >= self._RELOAD_CHECK_S or not self._keys:
            self._checked_at = now
            mtime = self.index_path.stat().st_mtime if self.index_path.exists() else None
            if mtime != self._mtime or not self._keys:
                self._load()
        return self._keys

    def reload(self) -> None:
        self._load()

    def active(self) -> SigningKey:
        keys = [k for k in self._fresh() if k.retired_at is None]
        if not keys:
            raise KeyringError(
                f"no active {self.purpose} signing key in {self.dir}; "
                f"run `suishen keys rotate --purpose {self.purpose}`"
            )
        return keys[-1]

    def verification_keys(self, window: timedelta) -> dict[str, SigningKey]:
        """Keys whose signatures may still be valid: active ones, and retired ones within
        `window` (the longest lifetime of anything they signed, plus clock skew)."""
        now = self.clock.now()
        return {
            k.kid: k for k in self._fresh() if k.retired_at is None or k.retired_at + window > now
        }

    def all_keys(self) -> list[SigningKey]:
        return list(self._fresh())

    # -- writing --

    def ensure(self, *, generated: bool) -> SigningKey:
        """Return the active key, creating the first one if there is none."""
        keys = [k for k in self._fresh() if k.retired_at is None]
        if keys:
            return keys[-1]
        return self.rotate(origin=GENERATED if generated else OPERATOR)

    def rotate(self, *, origin: str = OPERATOR) -> SigningKey:
        """Create a new active key; the previous active key retires now and keeps verifying."""
        self._load()
        now = self.clock.now()
        key = SigningKey(new_kid(now), ec.generate_private_key(ec.SECP256R1()), now, None, origin)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(self.dir / f"{key.kid}.pem", pem)
        entries = []
        for k in self._keys:
            retired = k.retired_at or now
            entries.append(_index_entry(k.kid, k.created_at, retired, k.origin))
        entries.append(_index_entry(key.kid, key.created_at, None, origin))
        tmp = self.index_path.with_suffix(".tmp")
        _write_private(
            tmp, json.dumps({"purpose": self.purpose, "keys": entries}, indent=2).encode()
        )
        os.replace(tmp, self.index_path)
        self._load()
        return key


def _index_entry(
    kid: str, created: datetime, retired: datetime | None, origin: str
) -> dict[str, str | None]:
    return {
        "kid": kid,
        "created_at": created.isoformat(),
        "retired_at": retired.isoformat() if retired else None,
        "origin": origin,
    }


class SecretStore:
    """Named 32-byte symmetric secrets, one file each under KEY_DIR/secrets."""

    def __init__(self, key_dir: Path) -> None:
        self.dir = key_dir / "secrets"
        self._cache: dict[str, bytes] = {}

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def get(self, name: str) -> bytes:
        if name not in self._cache:
            path = self.path(name)
            if not path.exists():
                raise KeyringError(f"secret {name!r} missing at {path}; run `suishen keys init`")
            raw = path.read_bytes().strip()
            value = bytes.fromhex(raw.decode())
            if len(value) < 32:
                raise KeyringError(f"secret {name!r} at {path} is shorter than 32 bytes")
            self._cache[name] = value
        return self._cache[name]

    def ensure(self, name: str, *, generated: bool) -> bytes:
        path = self.path(name)
        if not path.exists():
            _write_private(path, secrets.token_bytes(32).hex().encode())
            if generated:
                _write_private(path.with_suffix(".generated"), b"made on a dev start\n")
        return self.get(name)

    def is_generated(self, name: str) -> bool:
        return self.path(name).with_suffix(".generated").exists()


class Keys:
    """Every key purpose and secret the application uses, in one place."""

    SIGNING_PURPOSES = ("tokens", "codes", "bundles")
    SECRETS = ("pii", "blind_index", "otp", "webhooks", "invoices")

    def __init__(self, key_dir: Path, clock: Clock) -> None:
        self.key_dir = key_dir
        self.signing = {p: SigningKeyring(key_dir, p, clock) for p in self.SIGNING_PURPOSES}
        self.secrets = SecretStore(key_dir)

    def ensure_all(self, *, generated: bool) -> None:
        """Create whatever is missing (dev start, or `suishen keys init`)."""
        for ring in self.signing.values():
            ring.ensure(generated=generated)
        for name in self.SECRETS:
            self.secrets.ensure(name, generated=generated)

    def production_problems(self) -> list[str]:
        """Why these keys are not fit for production, if they are not."""
        problems = []
        for purpose, ring in self.signing.items():
            keys = [k for k in ring.all_keys() if k.retired_at is None]
            if not keys:
                problems.append(
                    f"no {purpose} signing key (run `suishen keys rotate --purpose {purpose}`)"
                )
            elif keys[-1].origin == GENERATED:
                problems.append(f"the {purpose} signing key was generated on a dev start")
        for name in self.SECRETS:
            if not self.secrets.path(name).exists():
                problems.append(f"secret {name!r} missing (run `suishen keys init`)")
            elif self.secrets.is_generated(name):
                problems.append(f"secret {name!r} was generated on a dev start")
        return problems
