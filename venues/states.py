"""The venues domain's states and the moves allowed between them, one table per machine (pure),
each made an `app.states.Machine` (`RESERVATION`, `ENTRY`).

    reservation   booked -> cancelled      (by the booker, until the slot starts)
                  booked -> no_show        (the no-show job, after the slot ended unused)
    entry         admitted -> annulled     (the gate, within the annul window, online entries)
                  denied                   (final)

Gates scan in one `Direction`; a gate is registered for one `GateDirection` (or both). The
enum values are the strings stored in the models' CharFields and sent over HTTP.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from app.states import Machine


class ReservationStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class EntryState(StrEnum):
    """Where one recorded scan stands (derived from `decision` and `annulled_at`)."""

    ADMITTED = "admitted"
    DENIED = "denied"
    ANNULLED = "annulled"


class Credential(StrEnum):
    """What identified the holder of a scan (`venues_entry.credential`)."""

    CODE = "code"  # the dynamic identity code, one admission per code
    PRINTED = "printed"  # a printed long-lived code, one admission per visit
    ID_CARD = "id_card"  # a resident ID card read at the gate, one admission per visit

    @property
    def long_lived(self) -> bool:
        return self is not Credential.CODE


class ScanDecision(StrEnum):
    ADMIT = "admit"
    DENY = "deny"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class GateDirection(StrEnum):
    IN = "in"
    OUT = "out"
    BOTH = "both"

    def allows(self, direction: str) -> bool:
        """Whether a gate registered for this direction may scan `direction`."""
        return self is GateDirection.BOTH or self.value == direction


class SyncOutcome(StrEnum):
    """What the server made of one scan a gate uploaded after deciding it offline:
    `recorded` and `conflict` are stored by this upload (a conflict with something for a
    human to judge), `duplicate` was stored before, `rejected` is not stored at all."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class SyncConflict(StrEnum):
    """Why an uploaded offline scan is reported for a human to judge."""

    CODE_ADMITTED_ELSEWHERE = "code_admitted_elsewhere"
    CODE_REVOKED = "code_revoked"
    CODE_INVALID = "code_invalid"
    CAPACITY_OVERRUN = "capacity_overrun"
    ALREADY_INSIDE = "already_inside"


class SyncRejection(StrEnum):
    """Why an uploaded offline scan is refused (not stored, never counted)."""

    SCAN_ID_REUSED = "scan_id_reused"
    SCANNED_BEFORE_BUNDLE_WINDOW = "scanned_before_bundle_window"
    SCANNED_IN_FUTURE = "scanned_in_future"
    SCANNED_AFTER_GATE_TIME = "scanned_after_gate_time"


class VisitKind(StrEnum):
    CHECKIN = "checkin"
    ENTRY = "entry"


RESERVATION_TRANSITIONS: dict[ReservationStatus, frozenset[ReservationStatus]] = {
    ReservationStatus.BOOKED: frozenset({ReservationStatus.CANCELLED, ReservationStatus.NO_SHOW}),
    ReservationStatus.CANCELLED: frozenset(),
    ReservationStatus.NO_SHOW: frozenset(),
}

ENTRY_TRANSITIONS: dict[EntryState, frozenset[EntryState]] = {
    EntryState.ADMITTED: frozenset({EntryState.ANNULLED}),
    EntryState.DENIED: frozenset(),
    EntryState.ANNULLED: frozenset(),
}

RESERVATION = Machine("reservation", ReservationStatus, RESERVATION_TRANSITIONS)
ENTRY = Machine("entry", EntryState, ENTRY_TRANSITIONS)


def entry_state(decision: str, annulled_at: datetime | None) -> EntryState:
    if annulled_at is not None:
        return EntryState.ANNULLED
    return EntryState.ADMITTED if decision == ScanDecision.ADMIT else EntryState.DENIED
