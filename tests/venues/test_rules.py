"""Booking rules and the venues knobs (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.errors import Problem
from venues.config import VenueRules
from venues.rules import check_booking, may_cancel, suspension_until

NOW = datetime(2026, 5, 2, 10, 0, tzinfo=UTC)
RULES = VenueRules()


def attempt(
    *, start_in: timedelta = timedelta(hours=2), party: int = 1, until: datetime | None = None
) -> str | None:
    try:
        check_booking(
            RULES,
            now=NOW,
            slot_starts_at=NOW + start_in,
            slot_ends_at=NOW + start_in + timedelta(hours=1),
            party_size=party,
            suspended_until=until,
        )
    except Problem as problem:
        return problem.code
    return None


def test_defaults_match_what_museum_booking_systems_do() -> None:
    assert (RULES.max_party, RULES.booking_opens_days, RULES.no_show_limit) == (5, 7, 3)
    assert (RULES.no_show_window_days, RULES.suspension_days, RULES.retention_days) == (30, 30, 28)


def test_knobs_come_from_settings_extra() -> None:
    rules = VenueRules.from_extra({"SUISHEN_VENUES_MAX_PARTY": "2", "SUISHEN_OTHER": "x"})
    assert rules.max_party == 2 and rules.booking_opens_days == 7
    with pytest.raises(ValueError, match="MAX_PARTY"):
        VenueRules.from_extra({"SUISHEN_VENUES_MAX_PARTY": "many"})


def test_party_of_five_books_six_does_not() -> None:
    assert attempt(party=5) is None
    assert attempt(party=6) == "party_too_large"


def test_booking_opens_seven_days_ahead() -> None:
    assert attempt(start_in=timedelta(days=7)) is None
    assert attempt(start_in=timedelta(days=7, seconds=1)) == "booking_not_open"


def test_slot_that_ended_cannot_be_booked_but_a_running_one_can() -> None:
    assert attempt(start_in=timedelta(minutes=-30)) is None
    assert attempt(start_in=timedelta(hours=-1)) == "slot_in_past"


def test_suspension_blocks_until_it_ends() -> None:
    assert attempt(until=NOW + timedelta(seconds=1)) == "booking_suspended"
    assert attempt(until=NOW) is None


def test_cancel_until_the_slot_starts() -> None:
    assert may_cancel(now=NOW, slot_starts_at=NOW + timedelta(seconds=1))
    assert not may_cancel(now=NOW, slot_starts_at=NOW)


def test_three_no_shows_in_thirty_days_suspend_for_thirty_days() -> None:
    days = [NOW - timedelta(days=d) for d in (29, 10)]
    assert suspension_until(RULES, days, NOW) is None
    assert suspension_until(RULES, [*days, NOW], NOW) == NOW + timedelta(days=30)


def test_no_shows_older_than_the_window_do_not_count() -> None:
    days = [NOW - timedelta(days=d) for d in (31, 10, 0)]
    assert suspension_until(RULES, days, NOW) is None


def test_local_day_is_shanghai_time() -> None:
    late_utc = datetime(2026, 5, 2, 17, 0, tzinfo=UTC)  # 01:00 on 3 May in Shanghai
    assert RULES.local_day(late_utc) == date(2026, 5, 3)
    start, end = RULES.day_bounds(date(2026, 5, 3))
    assert start == datetime(2026, 5, 2, 16, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)
