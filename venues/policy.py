"""The gate decision: a venue's policy applied to what is known about one scan (pure).

Entry scans are decided in this order, and the first failing step is the reason:

1. the code itself (`codes` reasons: `code_expired`, `code_replayed`, ...)
2. health-status colour not in `allowed_statuses`  -> `status_not_allowed`
3. younger than `min_age`                           -> `under_min_age`
4. `reservation_required` and no reservation whose slot window (from
   `early_entry` before the slot starts to its end) contains now -> `reservation_required`
5. `anti_passback` and the holder is inside already -> `already_inside`
6. `reentry_allowed` off and the holder left earlier that day -> `reentry_not_allowed`
7. occupancy at capacity                            -> `venue_full`

Exits need a valid code only. Steps 5 and 7 are decided here on a snapshot and then
enforced again atomically by the service (the snapshot may be stale under concurrency).

A party (a holder and companions, 同行人员) is settled by `settle_party`: each person's own
policy decision, then anti-passback per person, companions only with their holder, and
capacity for the whole party or for nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from venues.states import ScanDecision

ADMIT, DENY = ScanDecision.ADMIT, ScanDecision.DENY
OK = "ok"
STATUS_NOT_ALLOWED = "status_not_allowed"
UNDER_MIN_AGE = "under_min_age"
RESERVATION_REQUIRED = "reservation_required"
ALREADY_INSIDE = "already_inside"
REENTRY_NOT_ALLOWED = "reentry_not_allowed"
VENUE_FULL = "venue_full"
# ID cards and companions
ID_CARD_NOT_ALLOWED = "id_card_not_allowed"
ID_CARD_UNKNOWN = "id_card_unknown"
NOT_A_DEPENDENT = "not_a_dependent"
HOLDER_REFUSED = "holder_refused"
# The most companions one scan can name (the venue's party limit is usually lower).
MAX_COMPANIONS = 20


@dataclass(frozen=True)
class VenuePolicy:
    allowed_statuses: frozenset[str] = frozenset({"green"})
    reservation_required: bool = False
    anti_passback: bool = True
    reentry_allowed: bool = True
    min_age: int | None = None
    # Gates of this venue may scan an ID card instead of a code (online only).
    id_card_allowed: bool = True
    # Offline gates may admit printed (long-lived) codes, judged by the bundle's
    # revocations only: their current colour cannot be checked offline.
    printed_codes_offline: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VenuePolicy:
        """A policy as a venue stores it or a bundle carries it; missing keys take defaults."""
        return cls(
            allowed_statuses=frozenset(raw.get("allowed_statuses", ["green"])),
            reservation_required=bool(raw.get("reservation_required", False)),
            anti_passback=bool(raw.get("anti_passback", True)),
            reentry_allowed=bool(raw.get("reentry_allowed", True)),
            min_age=raw.get("min_age"),
            id_card_allowed=bool(raw.get("id_card_allowed", True)),
            printed_codes_offline=bool(raw.get("printed_codes_offline", False)),
        )

    def as_json(self) -> dict[str, Any]:
        """The policy as the API shows it and a bundle carries it (statuses sorted)."""
        return {
            "allowed_statuses": sorted(self.allowed_statuses),
            "reservation_required": self.reservation_required,
            "anti_passback": self.anti_passback,
            "reentry_allowed": self.reentry_allowed,
            "min_age": self.min_age,
            "id_card_allowed": self.id_card_allowed,
            "printed_codes_offline": self.printed_codes_offline,
        }


@dataclass(frozen=True)
class SlotWindow:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class ScanFacts:
    """What the gate and the server know at the moment of one scan."""

    now: datetime
    code_valid: bool
    code_reason: str
    status: str | None = None
    age: int | None = None
    reservations: Sequence[SlotWindow] = field(default_factory=tuple)
    inside: bool = False
    exited_today: bool = False
    occupancy: int = 0
    capacity: int = 0


@dataclass(frozen=True)
class Decision:
    decision: ScanDecision
    reason: str

    @property
    def admitted(self) -> bool:
        return self.decision == ADMIT


def admit() -> Decision:
    return Decision(ADMIT, OK)


def deny(reason: str) -> Decision:
    return Decision(DENY, reason)


def reservation_covers(window: SlotWindow, now: datetime, early_entry: timedelta) -> bool:
    """A reservation admits from `early_entry` before its slot until the slot ends."""
    return window.starts_at - early_entry <= now < window.ends_at


def current_reservation(
    windows: Sequence[SlotWindow], now: datetime, early_entry: timedelta
) -> SlotWindow | None:
    for window in windows:
        if reservation_covers(window, now, early_entry):
            return window
    return None


def age_on(birth_date: date, day: date) -> int:
    """Completed years on `day` (a 29 February birthday counts on 1 March in common years)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def decide_entry(policy: VenuePolicy, facts: ScanFacts, early_entry: timedelta) -> Decision:
    """Admit or deny an entry scan; see the module docstring for the order."""
    if not facts.code_valid:
        return deny(facts.code_reason)
    if facts.status not in policy.allowed_statuses:
        return deny(STATUS_NOT_ALLOWED)
    if policy.min_age is not None and (facts.age is None or facts.age < policy.min_age):
        # An unknown age cannot prove the minimum, so it is refused like a young one.
        return deny(UNDER_MIN_AGE)
    if policy.reservation_required and (
        current_reservation(facts.reservations, facts.now, early_entry) is None
    ):
        return deny(RESERVATION_REQUIRED)
    if policy.anti_passback and facts.inside:
        return deny(ALREADY_INSIDE)
    if not policy.reentry_allowed and facts.exited_today and not facts.inside:
        return deny(REENTRY_NOT_ALLOWED)
    if facts.occupancy >= facts.capacity:
        return deny(VENUE_FULL)
    return admit()


def decide_exit(facts: ScanFacts) -> Decision:
    """Exits are let through on any valid code; occupancy never drops below zero."""
    if not facts.code_valid:
        return deny(facts.code_reason)
    return admit()


@dataclass(frozen=True)
class PartySettlement:
    """The final decisions of a party's entry, in party order (the holder first)."""

    decisions: tuple[Decision, ...]
    counted: tuple[bool, ...]  # whose entry takes a place (not inside before)

    @property
    def places(self) -> int:
        return sum(self.counted)


def settle_party(
    planned: Sequence[Decision],
    inside: Sequence[bool],
    *,
    anti_passback: bool,
    occupancy: int,
    capacity: int,
    holder_fixed: bool = False,
) -> PartySettlement:
    """Settle an entry of a holder (index 0) and companions from each person's policy
    decision (`planned`) and whether they are inside. A companion passes only with the
    holder; under anti-passback someone inside is refused; people already inside pass
    uncounted; and the places the party needs are taken for everyone or for nobody
    (`venue_full`). `holder_fixed`: the holder's decision is given (a repeat of its
    admission) and they take no place. The service enforces the same atomically."""
    holder_passes = planned[0].admitted and (holder_fixed or not (anti_passback and inside[0]))
    passes: list[bool] = []
    reasons: list[str] = []  # why a person does not pass ("" when they do)
    for i, (decision, is_inside) in enumerate(zip(planned, inside, strict=True)):
        if i == 0 and holder_fixed:
            passes.append(False)
            reasons.append("")
        elif not decision.admitted:
            passes.append(False)
            reasons.append(decision.reason)
        elif i > 0 and not holder_passes:
            passes.append(False)
            reasons.append(HOLDER_REFUSED)
        elif anti_passback and is_inside:
            passes.append(False)
            reasons.append(ALREADY_INSIDE)
        else:
            passes.append(True)
            reasons.append("")
    counted = [p and not is_inside for p, is_inside in zip(passes, inside, strict=True)]
    places = sum(counted)
    room = places == 0 or occupancy + places <= capacity
    decisions: list[Decision] = []
    for i, (passing, reason) in enumerate(zip(passes, reasons, strict=True)):
        if i == 0 and holder_fixed:
            decisions.append(planned[0])
        elif not passing:
            decisions.append(deny(reason))
        elif not room:
            decisions.append(deny(VENUE_FULL))
        else:
            decisions.append(admit())
    return PartySettlement(tuple(decisions), tuple(c and room for c in counted))
