"""What operators and residents read back: a venue's entry log, a resident's own visits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from auth.api import Principal, subject_for_request
from venues.models import Entry, Venue, Visit
from venues.policy import ADMIT
from venues.states import Direction, VisitKind


async def list_entries(
    venue_id: str,
    *,
    gate_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: int | None,
) -> tuple[list[Entry], int | None]:
    """Newest first, keyset-paginated by id (stable while new scans arrive)."""
    query = Entry.filter(venue_id=venue_id)
    if gate_id:
        query = query.filter(gate_id=gate_id)
    if since is not None:
        query = query.filter(scanned_at__gte=since)
    if until is not None:
        query = query.filter(scanned_at__lt=until)
    if cursor is not None:
        query = query.filter(id__lt=cursor)
    rows = await query.order_by("-id").limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


@dataclass(frozen=True)
class VisitRecord:
    kind: VisitKind
    venue_id: str
    venue_name: str
    at: datetime


async def my_visits(principal: Principal, limit: int = 100) -> list[VisitRecord]:
    subject_id = await subject_for_request(principal, None)
    checkins = await Visit.filter(subject_id=subject_id).order_by("-checked_in_at").limit(limit)
    entries = (
        await Entry.filter(
            subject_id=subject_id, direction=Direction.IN, decision=ADMIT, annulled_at=None
        )
        .order_by("-scanned_at")
        .limit(limit)
    )
    venue_ids = {v.venue_id for v in checkins} | {e.venue_id for e in entries}
    names = dict(await Venue.filter(id__in=list(venue_ids)).values_list("id", "name"))
    records = [
        VisitRecord(VisitKind.CHECKIN, v.venue_id, str(names.get(v.venue_id, "")), v.checked_in_at)
        for v in checkins
    ] + [
        VisitRecord(VisitKind.ENTRY, e.venue_id, str(names.get(e.venue_id, "")), e.scanned_at)
        for e in entries
    ]
    records.sort(key=lambda r: r.at, reverse=True)
    return records[:limit]
