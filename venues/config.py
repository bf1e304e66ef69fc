"""The venues domain's configuration and runtime: every knob read from `settings.extra`.

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

`VenuesRuntime` (the rules plus the gate and venue caches) is built once in
`venues.wiring.startup` and read with `ctx.runtime(VenuesRuntime)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from app.settings import Settings, int_knob
from venues.policy import VenuePolicy
from venues.states import GateDirection

# How long a scan trusts its cached venue snapshot: an edit in another process reaches
# gates within this time (the occupancy is never read from the cache).
VENUE_CACHE_S = 2.0
# A gate's last contact is written at most this often per gate and process: a scan costs
# one cheap UPDATE only when the stored time is older than this (see docs/venues.md).
CONTACT_WRITE_S = 30


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


@dataclass(frozen=True)
class VenueSnapshot:
    """What a scan needs of its venue; kept for VENUE_CACHE_S."""

    id: str
    capacity: int
    policy: VenuePolicy
    read_at: float


@dataclass
class VenuesRuntime:
    rules: VenueRules
    # client id -> (venue id, gate direction). Gates never move between venues.
    gates: dict[str, tuple[str, GateDirection]] = field(default_factory=dict)
    venues: dict[str, VenueSnapshot] = field(default_factory=dict)
    # gate id -> when this process last wrote the gate's `last_contact_at`.
    contacts: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> VenuesRuntime:
        return cls(VenueRules.from_extra(settings.extra))
