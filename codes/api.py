"""What other domains may use of codes: the entry points `docs/contracts.md` lists.

Online verification and status for gates and hospitals, the subject of a code scanned
earlier (`holder_of`, for synced offline scans), the keys, revocations and day keys an
offline bundle carries, place codes, QR rendering, the pure pieces an offline gate runs, and
the status colours and verification reasons as types (`Status`, `Reason`).
Every import of codes from another domain goes through this module (tests/test_contracts.py).
"""

from __future__ import annotations

from codes.errors import PlaceCodeInvalid
from codes.holders import holder_of
from codes.keys import daily_pseudonym, gate_token_keys, public_keys
from codes.place_codes import sign_place_code, verify_place_code
from codes.pseudonym import day_of
from codes.qr import png as qr_png
from codes.qr import svg as qr_svg
from codes.revocation import revocations_since
from codes.states import Reason, Status
from codes.status import current_status
from codes.verifier import GATE_KINDS, ReplayMemory, Result, TrustedKey, keys_from_jwks, verify
from codes.verifier import daily_pseudonym as offline_pseudonym
from codes.verifying import Verification, verify_code

__all__ = [
    "GATE_KINDS",
    "PlaceCodeInvalid",
    "Reason",
    "ReplayMemory",
    "Result",
    "Status",
    "TrustedKey",
    "Verification",
    "current_status",
    "daily_pseudonym",
    "day_of",
    "gate_token_keys",
    "holder_of",
    "keys_from_jwks",
    "offline_pseudonym",
    "public_keys",
    "qr_png",
    "qr_svg",
    "revocations_since",
    "sign_place_code",
    "verify",
    "verify_code",
    "verify_place_code",
]
