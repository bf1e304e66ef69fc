"""The venues domain's counters and presence rows: the raw SQL and conditional updates that
keep them within their bounds under concurrency.

Counters that must never overshoot (a slot's `booked`, a venue's `occupancy`) change only
through conditional UPDATEs whose WHERE clause holds the limit, inside the transaction
that records why they changed; the database serialises concurrent writers on the row.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import F, Q

from app.db import placeholders
from venues.models import Presence, Slot, Venue

# Inserts the presence row inside, or flips an outside one; no row comes back when the
# person is inside already. One statement, so two gates cannot both claim the person.
_CLAIM_SQL = (
    "INSERT INTO venues_presence (venue_id, subject_id, inside, entered_at) "
    "VALUES ({0}, {1}, TRUE, {2}) ON CONFLICT (venue_id, subject_id) DO UPDATE "
    "SET inside = TRUE, entered_at = excluded.entered_at "
    "WHERE venues_presence.inside = FALSE{extra} RETURNING id"
)
# A synced entry (scanned earlier, uploaded now) does not undo a later recorded exit.
_AFTER_EXIT = (
    " AND (venues_presence.exited_at IS NULL OR venues_presence.exited_at < excluded.entered_at)"
)

# Records an exit of someone not inside: the last exit time only moves forward.
_EXITED_SQL = (
    "INSERT INTO venues_presence (venue_id, subject_id, inside, exited_at) "
    "VALUES ({0}, {1}, FALSE, {2}) ON CONFLICT (venue_id, subject_id) DO UPDATE "
    "SET exited_at = excluded.exited_at "
    "WHERE venues_presence.exited_at IS NULL OR venues_presence.exited_at < excluded.exited_at"
)

_BUMP_SQL = {
    +1: "UPDATE venues_venue SET occupancy = occupancy + 1 "
    "WHERE id = {p} AND occupancy < capacity RETURNING occupancy",
    -1: "UPDATE venues_venue SET occupancy = occupancy - 1 "
    "WHERE id = {p} AND occupancy > 0 RETURNING occupancy",
}

_OCCUPANCY_SQL = "SELECT occupancy FROM venues_venue WHERE id = {p}"


async def claim_inside(
    venue_id: str, subject_id: str, at: datetime, *, synced: bool = False
) -> bool:
    """Mark the person inside; False when they were inside already (a concurrent scan won)
    or, for a `synced` entry, when an exit later than `at` is recorded."""
    client = Venue._meta.db
    sql = _CLAIM_SQL.format(*placeholders(client, 3), extra=_AFTER_EXIT if synced else "")
    rows = await client.execute_query_dict(sql, [venue_id, subject_id, at])
    return bool(rows)


async def release_inside(venue_id: str, subject_id: str | None) -> bool:
    """Undo a claim: the person is outside again (their last exit time is kept). True when
    they were inside."""
    released = await Presence.filter(venue_id=venue_id, subject_id=subject_id, inside=True).update(
        inside=False
    )
    return released > 0


async def leave(venue_id: str, subject_id: str, at: datetime, *, synced: bool = False) -> bool:
    """Record the person leaving; True when they were inside (the exit takes a place off the
    occupancy). A `synced` exit earlier than the recorded entry belongs to an earlier visit
    and leaves them inside. Someone not inside is let out and only their exit time kept."""
    query = Presence.filter(venue_id=venue_id, subject_id=subject_id, inside=True)
    if synced:
        query = query.filter(Q(entered_at=None) | Q(entered_at__lte=at))
    if await query.update(inside=False, exited_at=at):
        return True
    client = Venue._meta.db
    sql = _EXITED_SQL.format(*placeholders(client, 3))
    await client.execute_query(sql, [venue_id, subject_id, at])
    return False


async def inside(venue_id: str, subject_id: str) -> bool:
    return await Presence.filter(venue_id=venue_id, subject_id=subject_id, inside=True).exists()


async def bump_occupancy(venue_id: str, delta: int) -> int | None:
    """One conditional UPDATE ... RETURNING (SQLite and PostgreSQL both have it): the new
    occupancy, or None when the bound (capacity, or zero) was reached."""
    client = Venue._meta.db
    sql = _BUMP_SQL[delta].format(p=placeholders(client, 1)[0])
    # execute_query_dict: the asyncpg client's execute_query drops RETURNING rows of UPDATEs.
    rows = await client.execute_query_dict(sql, [venue_id])
    return int(rows[0]["occupancy"]) if rows else None


async def occupancy(venue_id: str) -> int:
    # Raw and narrow: read on every deny, so the ORM's model building is not worth it.
    client = Venue._meta.db
    sql = _OCCUPANCY_SQL.format(p=placeholders(client, 1)[0])
    rows = await client.execute_query_dict(sql, [venue_id])
    return int(rows[0]["occupancy"]) if rows else 0


async def take_places(slot_id: str, n: int) -> bool:
    """Book `n` places of a slot; False when fewer are left."""
    # The WHERE clause is the capacity check: a concurrent booking that took the last
    # places makes this update match no row, whatever this request read.
    taken = await Slot.filter(id=slot_id, booked__lte=F("capacity") - (F("walk_in") + n)).update(
        booked=F("booked") + n
    )
    return taken > 0


async def give_back_places(slot_id: str, n: int) -> None:
    await Slot.filter(id=slot_id, booked__gte=n).update(booked=F("booked") - n)
