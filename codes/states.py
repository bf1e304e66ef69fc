"""The codes domain's fixed vocabularies as types: health status colours and verification
reasons. Pure (the codec, the verifier and offline gates import it).

Neither is a state machine with forbidden moves: the authority may set any colour after any
other (the history keeps every change), and a reason is a verdict, not a state. A code's own
life (issued -> consumed by one verifier, or revoked) is decided atomically by the store's
VERIFY script (`codes.store.Outcome`).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A subject's health-status colour. The order is the wire order (values 0, 1, 2)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


# Stored and cached colours are plain strings: this maps them back without an Enum call
# on the hot path.
STATUS_OF: dict[str, Status] = {s.value: s for s in Status}


class Reason(StrEnum):
    """Why a code was accepted or refused: `POST /v1/codes/verify`'s `reason`."""

    OK = "ok"
    CODE_MALFORMED = "code_malformed"
    SIGNATURE_INVALID = "signature_invalid"
    UNKNOWN_KEY = "unknown_key"
    CODE_EXPIRED = "code_expired"
    CODE_NOT_YET_VALID = "code_not_yet_valid"
    CODE_REVOKED = "code_revoked"
    # Decided by a replay memory (the server's store or an offline gate's), never by
    # `verifier.verify` alone.
    CODE_REPLAYED = "code_replayed"
    # Decided only online: the subject's status changed after the code was issued.
    STATUS_CHANGED = "status_changed"
