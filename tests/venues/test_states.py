"""The venues state machines: the allowed moves, and the API's shapes naming the same states."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import get_args

import pytest
from pydantic import BaseModel

from app.states import IllegalTransition
from venues.schemas import EntryOut, GateIn, ReservationOut, ScanIn, SyncResult, VisitOut
from venues.states import (
    ENTRY,
    RESERVATION,
    Direction,
    EntryState,
    GateDirection,
    ReservationStatus,
    ScanDecision,
    SyncOutcome,
    VisitKind,
    entry_state,
)


def test_a_booking_is_cancelled_or_missed_once_and_then_stays() -> None:
    booked = ReservationStatus.BOOKED
    assert RESERVATION.can_move(booked, ReservationStatus.CANCELLED)
    assert RESERVATION.can_move(booked, ReservationStatus.NO_SHOW)
    assert not RESERVATION.can_move(booked, booked)
    assert RESERVATION.terminal == {ReservationStatus.CANCELLED, ReservationStatus.NO_SHOW}
    for final in (ReservationStatus.CANCELLED, ReservationStatus.NO_SHOW):
        assert not any(RESERVATION.can_move(final, other) for other in ReservationStatus)
    with pytest.raises(IllegalTransition):
        RESERVATION.advance(ReservationStatus.NO_SHOW, ReservationStatus.BOOKED)


def test_only_an_admitted_entry_can_be_annulled() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert entry_state("admit", None) == EntryState.ADMITTED
    assert entry_state("deny", None) == EntryState.DENIED
    assert entry_state("admit", when) == EntryState.ANNULLED
    assert ENTRY.advance(EntryState.ADMITTED, EntryState.ANNULLED) == EntryState.ANNULLED
    assert not ENTRY.can_move(EntryState.DENIED, EntryState.ANNULLED)
    assert not ENTRY.can_move(EntryState.ANNULLED, EntryState.ANNULLED)
    assert ENTRY.terminal == {EntryState.DENIED, EntryState.ANNULLED}


def test_a_gate_for_both_directions_scans_either() -> None:
    assert GateDirection.BOTH.allows("in") and GateDirection.BOTH.allows("out")
    assert GateDirection.IN.allows("in") and not GateDirection.IN.allows("out")


@pytest.mark.parametrize(
    ("model", "field", "states"),
    [
        (ReservationOut, "status", ReservationStatus),
        (GateIn, "direction", GateDirection),
        (ScanIn, "direction", Direction),
        (EntryOut, "decision", ScanDecision),
        (SyncResult, "outcome", SyncOutcome),
        (VisitOut, "kind", VisitKind),
    ],
)
def test_the_api_names_exactly_the_domain_states(
    model: type[BaseModel], field: str, states: type[StrEnum]
) -> None:
    annotation = model.model_fields[field].annotation
    assert set(get_args(annotation)) == {member.value for member in states}
