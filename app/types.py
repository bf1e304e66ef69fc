"""Field types that carry their limits, so the edge refuses what the database or a date
computation could not take (issue 9): ids, bounded text, dates and instants, counters.

Every request schema builds on these instead of bare `str`/`int`/`date`/`datetime`; the
limits show in /openapi.json because they are pydantic constraints. NUL characters are
refused for every string by `app.http` (bodies, queries, paths), not field by field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

# What our generated ids and client-chosen ids (scan_id, charge_id, ...) are made of.
ID_CHARS = r"^[A-Za-z0-9_.:\-]+$"
ID_MAX = 40  # server-made ids: prefix + random part; every id column is at least this wide
LONG_ID_MAX = 64  # subject ids and ids a client chooses (scan_id, charge_id, refund_id)

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX, pattern=ID_CHARS)]
LongId = Annotated[str, StringConstraints(min_length=1, max_length=LONG_ID_MAX, pattern=ID_CHARS)]

# The range of calendar days and instants the service reasons about. Anything outside is a
# typo or an attack, and near the ends of `datetime` adding a day or a zone overflows.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, tzinfo=UTC)
INT64_MAX = 2**63 - 1


def text(max_length: int, *, min_length: int = 1) -> object:
    """Free text of bounded length with surrounding white space stripped."""
    return StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=True)


def _sane_day(value: date) -> date:
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValueError(f"date must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return value


def _sane_instant(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("time must carry a zone offset (RFC 3339), e.g. 2026-05-01T08:00:00Z")
    # Check the year first: astimezone() itself overflows at the ends of `datetime`.
    if not EARLIEST.year <= value.year <= LATEST.year or not (
        EARLIEST <= (moved := value.astimezone(UTC)) <= LATEST
    ):
        raise ValueError(f"time must be between {EARLIEST.date()} and {LATEST.date()}")
    return moved


# The ranges as patterns, so /openapi.json says what the validators enforce: days of the
# years 1900-2199; instants whose local year is 1971-2198 (inside the range in any offset).
DAY_PATTERN = r"^(19|20|21)[0-9]{2}-"
INSTANT_PATTERN = r"^(197[1-9]|19[89][0-9]|20[0-9]{2}|21[0-8][0-9]|219[0-8])-"
Day = Annotated[
    date,
    AfterValidator(_sane_day),
    Field(json_schema_extra={"example": "2026-05-01", "pattern": DAY_PATTERN}),
]
Instant = Annotated[
    datetime,
    AfterValidator(_sane_instant),
    Field(json_schema_extra={"example": "2026-05-01T08:00:00Z", "pattern": INSTANT_PATTERN}),
]
# A counter or cursor that fits PostgreSQL's BIGINT.
Cursor = Annotated[int, Field(ge=0, le=INT64_MAX)]


def count(maximum: int, *, minimum: int = 0) -> object:
    """An integer in a closed range (capacities, quantities, limits)."""
    return Field(ge=minimum, le=maximum)
