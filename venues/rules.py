"""Booking rules and every venues knob read from `settings.extra` (pure, no I/O).

| knob (`SUISHEN_VENUES_*`)      | default | meaning                                             |
|--------------------------------|---------|-----------------------------------------------------|
| `MAX_PARTY`                    | 5       | people in one booking (the booker and dependents)   |
| `BOOKING_OPENS_DAYS`           | 7       | booking opens this many days before a slot starts   |
| `NO_SHOW_LIMIT`                | 3       | no-shows within the window that suspend booking     |
| `NO_SHOW_WINDOW_DAYS`          | 30      | the window no-shows are counted in                  |
| `SUSPENSION_DAYS`              | 30      | how long booking stays suspended                    |
| `EARLY_ENTRY_MINUTES`          | 30      | a reservation admits from this long before its slot |
| `SCAN_SKEW_SECONDS`            | 120     | largest accepted gap between `scanned_at` and now   |
| `ANNUL_WINDOW_SECONDS`         | 60      | how long after an admit the gate may annul it       |
| `RETENTION_DAYS`               | 28      | entries, scans and visits are purged after this     |
| `BUNDLE_HOURS`                 | 24      | validity of an offline gate bundle                  |
| `UTC_OFFSET_HOURS`             | 8       | the venues' local time (Shanghai) for "a day"       |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from app.settings import int_knob
from venues.errors import BookingNotOpen, BookingSuspended, PartyTooLarge, SlotInPast


@dataclass(frozen=True)
class VenueRules:
    max_party: int = 5
    booking_opens_days: int = 7
    no_show_limit: int = 3
    no_show_window_days: int = 30
    suspension_days: int = 30
    early_entry_minutes: int = 30
    scan_skew_seconds: int = 120
    annul_window_seconds: int = 60
    retention_days: int = 28
    bundle_hours: int = 24
    utc_offset_hours: int = 8

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> VenueRules:
        """Read the `SUISHEN_VENUES_*` knobs; a malformed value is a start-up error."""
        defaults = cls()
        return cls(
            **{
                name: int_knob(extra, f"SUISHEN_VENUES_{name.upper()}", getattr(defaults, name))
                for name in cls.__dataclass_fields__
            }
        )

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset_hours))

    @property
    def early_entry(self) -> timedelta:
        return timedelta(minutes=self.early_entry_minutes)

    def local_day(self, when: datetime) -> date:
        """The venue-local calendar day of an instant ("one booking per day" counts these)."""
        return when.astimezone(self.tz).date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants a local day starts and ends at."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


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
