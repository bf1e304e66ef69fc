"""Booking rules: who may book, cancel, and when repeated no-shows suspend booking (pure).

The knobs they read are `venues.config.VenueRules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from venues.config import VenueRules
from venues.errors import BookingNotOpen, BookingSuspended, PartyTooLarge, SlotInPast


def check_booking(
    rules: VenueRules,
    *,
    now: datetime,
    slot_starts_at: datetime,
    slot_ends_at: datetime,
    party_size: int,
    suspended_until: datetime | None,
) -> None:
    """Raise the first rule a booking breaks: suspension, party size, slot over, not open yet.

    Capacity and one-booking-per-day are enforced by the database, atomically."""
    if suspended_until is not None and suspended_until > now:
        raise BookingSuspended(
            f"booking is suspended until {suspended_until.isoformat()} after repeated no-shows",
            extra={"until": suspended_until.isoformat()},
        )
    if party_size > rules.max_party:
        raise PartyTooLarge(f"a booking holds at most {rules.max_party} people")
    if slot_ends_at <= now:
        raise SlotInPast("the slot has already ended")
    if slot_starts_at - now > timedelta(days=rules.booking_opens_days):
        opens = slot_starts_at - timedelta(days=rules.booking_opens_days)
        raise BookingNotOpen(
            f"booking for this slot opens at {opens.isoformat()}",
            extra={"opens_at": opens.isoformat()},
        )


def may_cancel(*, now: datetime, slot_starts_at: datetime) -> bool:
    """A booking can be cancelled until its slot starts."""
    return now < slot_starts_at


def suspension_until(
    rules: VenueRules, no_shows: Sequence[datetime], now: datetime
) -> datetime | None:
    """When booking resumes if the no-shows inside the window ending `now` reach the
    limit, else None. The suspension runs from the latest of them; callers keep the
    result, because the window moves on while the suspension must not."""
    window_start = now - timedelta(days=rules.no_show_window_days)
    recent = sorted(t for t in no_shows if window_start < t <= now)
    if len(recent) < rules.no_show_limit:
        return None
    return recent[-1] + timedelta(days=rules.suspension_days)
