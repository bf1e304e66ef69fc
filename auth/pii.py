"""Personal data at rest: AES-GCM encryption of names, ID numbers and phones, and the
HMAC blind index that finds a row by an exact value without storing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class PiiCipher:
    """Encrypts one field of one row. The associated data names the field and the row,
    so a ciphertext copied into another row or column fails to decrypt."""

    def __init__(self, encryption_key: bytes, index_key: bytes) -> None:
        self._aead = AESGCM(encryption_key[:32])
        self._index_key = index_key

    def encrypt(self, plaintext: str, *, field: str, row: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), f"{field}:{row}".encode())
        return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, field: str, row: str) -> str:
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise ValueError(f"unknown PII ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], f"{field}:{row}".encode()).decode()

    def blind_index(self, value: str, *, field: str) -> str:
        """Keyed hash for exact-match lookup; per field, so equal values in different
        fields do not link."""
        return hmac.new(self._index_key, f"{field}:{value}".encode(), hashlib.sha256).hexdigest()
