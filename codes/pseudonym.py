"""The sealed subject token inside an identity code, and the daily pseudonyms behind it.

token = AES-256(gate_key[day], pseudonym[day] || nonce): unlinkable without a key.
pseudonym[day] = a keyed 64-bit permutation of the subject's random handle, so only the
server (which holds the permutation key) gets back to the subject, gates holding the
day's gate key see a pseudonym that changes every day, and everyone else sees noise.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Days start at midnight in Shanghai (UTC+8), the day a gate and its reservations live in.
DAY_OFFSET_S = 8 * 3600
_ROUNDS = 4  # Luby-Rackoff: four Feistel rounds make a strong pseudorandom permutation


def day_of(unix_s: int) -> int:
    """The day number (days since 1970-01-01 in UTC+8) a code issued at `unix_s` belongs to."""
    return (unix_s + DAY_OFFSET_S) // 86400


def _derive(secret: bytes, label: str, day: int) -> bytes:
    info = f"suishen codes {label} v1 day {day}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def token_secret(root: bytes) -> bytes:
    """The codes' own secret, derived from a deployment secret under its own label."""
    return _derive(root, "token-root", 0)


def gate_key(secret: bytes, day: int) -> bytes:
    """The key that opens tokens of `day`: given to gates in their offline bundle."""
    return _derive(secret, "gate-token", day)


def permutation_key(secret: bytes, day: int) -> bytes:
    """The key of the day's handle <-> pseudonym permutation: never leaves the server."""
    return _derive(secret, "pseudonym", day)


def _round(key: bytes, i: int, half: bytes) -> bytes:
    return hmac.digest(key, bytes([i]) + half, hashlib.sha256)[:4]


def _xor4(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(4, "big")


def pseudonymise(perm_key: bytes, handle: bytes) -> bytes:
    """The subject's 8-byte pseudonym of a day (a Feistel permutation of its handle)."""
    left, right = handle[:4], handle[4:]
    for i in range(_ROUNDS):
        left, right = right, _xor4(left, _round(perm_key, i, right))
    return left + right


def depseudonymise(perm_key: bytes, pseudonym: bytes) -> bytes:
    left, right = pseudonym[:4], pseudonym[4:]
    for i in reversed(range(_ROUNDS)):
        left, right = _xor4(right, _round(perm_key, i, left)), left
    return left + right


@lru_cache(maxsize=64)
def _contexts(key: bytes) -> tuple[Any, Any]:
    # One AES block, encrypted once per code and never reused with another nonce: ECB is
    # exactly a keyed permutation of that block, no mode of operation is involved. ECB
    # contexts keep no state between blocks, so one pair per key serves every call.
    cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
    return cipher.encryptor(), cipher.decryptor()


def seal(gate_key_: bytes, pseudonym: bytes, nonce: bytes) -> bytes:
    if len(pseudonym) != 8 or len(nonce) != 8:
        raise ValueError("pseudonym and nonce are 8 bytes each")
    sealed: bytes = _contexts(gate_key_)[0].update(pseudonym + nonce)
    return sealed


@dataclass(frozen=True, slots=True)
class Opened:
    pseudonym: bytes
    nonce: bytes


def open_token(gate_key_: bytes, token: bytes) -> Opened:
    if len(token) != 16:
        raise ValueError("a token is 16 bytes")
    block: bytes = _contexts(gate_key_)[1].update(token)
    return Opened(block[:8], block[8:])
