"""The venues domain's counters and presence rows: the raw SQL and conditional updates that
keep them within their bounds under concurrency.

Counters that must never overshoot (a slot's `booked`, a venue's `occupancy`) change only
through conditional UPDATEs whose WHERE clause holds the limit, inside the transaction
that records why they changed; the database serialises concurrent writers on the row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.exceptions import OperationalError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app.db import placeholders, sql_for
from venues import policy as pol
from venues.errors import ScanContended
from venues.models import Admission, Entry, Presence, Reservation, Slot, Venue
from venues.states import Direction

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
    +1: "UPDATE venues_venue SET occupancy = occupancy + {0} "
    "WHERE id = {1} AND occupancy + {2} <= capacity RETURNING occupancy",
    -1: "UPDATE venues_venue SET occupancy = occupancy - {0} "
    "WHERE id = {1} AND occupancy >= {2} RETURNING occupancy",
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
    occupancy, or None when the bound (capacity, or zero) would be passed."""
    client = Venue._meta.db
    sql = sql_for(client, _BUMP_SQL[1 if delta > 0 else -1], 3)
    # execute_query_dict: the asyncpg client's execute_query drops RETURNING rows of UPDATEs.
    rows = await client.execute_query_dict(sql, [abs(delta), venue_id, abs(delta)])
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


# -- one scan's decision for a party, in one round trip ----------------------------------------


@dataclass(frozen=True)
class PartyMember:
    """One person of a scanned party (the holder first) with the policy's own decision on
    them (`planned`); anti-passback and capacity are settled in the scan's statement."""

    subject_id: str | None
    planned: pol.Decision
    scan_id: str
    body_hash: str
    response: dict[str, Any]  # the answer without decision, reason and occupancy
    code_id: str | None = None
    reservation_id: str | None = None
    # A holder answered as a repeat of its admission: the decision is given, no place taken.
    fixed: bool = False


@dataclass(frozen=True)
class PartyScan:
    venue_id: str
    gate_id: str
    direction: Direction
    credential: str
    scanned_at: datetime
    recorded_at: datetime
    anti_passback: bool
    members: Sequence[PartyMember]
    # The holder's admission key (None: no admission is taken, e.g. an exit or a repeat).
    admission_key: str | None = None
    # Exits: the per-visit admission keys of the people let out, released with the exit.
    visit_keys: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class RecordedScan:
    scan_id: str
    decision: str
    reason: str
    counted: bool
    response: dict[str, Any]


class ScanRaced(Exception):
    """The scan's snapshot disagreed with what its guarded writes found (a concurrent scan
    moved presence or occupancy in between); the statement rolled back whole."""


# PostgreSQL: the whole decision in one statement. Everything is decided on the statement's
# snapshot (admission held, who is inside, occupancy); the writes are guarded (the admission
# key's primary key, `occupancy + k <= capacity`, `inside = FALSE`), and when one finds
# other than the snapshot said (a concurrent scan committed in between) the last SELECT
# fails its cast, rolling everything back, and the scan is tried again (ScanRaced). The
# CTEs reference each other so the rows are locked in one order: admission key, venue,
# presence. The decision is `venues.policy.settle_party`, written in SQL. The party comes
# as one JSON array (`party_json`) and only the decisions come back (`_answered` builds the
# answers): nine one-element arrays and a JSON answer read back cost the client more than
# the rest of the call, and PostgreSQL twice the time.
_PARTY_HEAD = """
WITH p AS (
  SELECT * FROM jsonb_to_recordset({0}::jsonb) AS t(subject_id text, planned bool, reason text,
    fixed bool, scan_id text, body_hash text, code_id text, reservation_id text, response jsonb,
    i bigint)
),
v AS (
  SELECT occupancy, capacity,
         NOT EXISTS (SELECT 1 FROM venues_admission WHERE key = {2}) AS go
  FROM venues_venue WHERE id = {1}
),
f AS (
  SELECT p.*, COALESCE((SELECT pr.inside FROM venues_presence pr
                        WHERE pr.venue_id = {1} AND pr.subject_id = p.subject_id), FALSE)
         AS inside
  FROM p
),"""
_ENTER_CTES = """
h AS (SELECT planned AND (fixed OR NOT ({3} AND inside)) AS passes FROM f WHERE i = 1),
d AS (
  SELECT f.*,
    (NOT f.fixed AND f.planned AND (f.i = 1 OR h.passes) AND NOT ({3} AND f.inside)) AS passes,
    CASE WHEN f.fixed OR NOT f.planned THEN f.reason
         WHEN f.i > 1 AND NOT h.passes THEN 'holder_refused'
         WHEN {3} AND f.inside THEN 'already_inside' ELSE 'ok' END AS why
  FROM f, h
),
k AS (SELECT count(*) FILTER (WHERE passes AND NOT inside) AS places FROM d),
s AS (
  SELECT d.*, r.room,
    CASE WHEN d.fixed THEN (CASE WHEN d.planned THEN 'admit' ELSE 'deny' END)
         WHEN d.passes AND r.room THEN 'admit' ELSE 'deny' END AS decision,
    CASE WHEN d.fixed THEN d.reason WHEN d.passes AND r.room THEN 'ok'
         WHEN d.passes THEN 'venue_full' ELSE d.why END AS final_reason,
    (d.passes AND NOT d.inside AND r.room) AS counted
  FROM d, (SELECT k.places = 0 OR v.occupancy + k.places <= v.capacity AS room FROM k, v) r
),
adm AS (
  INSERT INTO venues_admission (key, venue_id, gate_id, scan_id, admitted_at)
  SELECT {2}, {1}, {4}, s.scan_id, {6} FROM s, v
  WHERE v.go AND {2}::text IS NOT NULL AND s.i = 1 AND NOT s.fixed AND s.decision = 'admit'
  RETURNING key
),
occ AS (
  UPDATE venues_venue SET occupancy = venues_venue.occupancy + k.places
  FROM k, v, (SELECT count(*) AS n FROM adm) a
  WHERE venues_venue.id = {1} AND v.go AND a.n >= 0 AND k.places > 0
    AND venues_venue.occupancy + k.places <= venues_venue.capacity
    AND EXISTS (SELECT 1 FROM s WHERE s.room)
  RETURNING venues_venue.occupancy
),
claim AS (
  INSERT INTO venues_presence (venue_id, subject_id, inside, entered_at)
  SELECT {1}, s.subject_id, TRUE, {6} FROM s, v
  WHERE v.go AND s.passes AND s.room
    AND ((SELECT places FROM k) = 0 OR EXISTS (SELECT 1 FROM occ))
  ON CONFLICT (venue_id, subject_id) DO UPDATE
  SET inside = TRUE, entered_at = excluded.entered_at WHERE venues_presence.inside = FALSE
  RETURNING subject_id
),
res AS (
  UPDATE venues_reservation SET used_at = {6}
  WHERE id IN (SELECT reservation_id FROM s WHERE s.counted) AND used_at IS NULL
    AND (SELECT go FROM v)
),"""
_EXIT_CTES = """
s AS (
  SELECT f.*, CASE WHEN f.planned THEN 'admit' ELSE 'deny' END AS decision,
         f.reason AS final_reason, (f.planned AND f.inside) AS counted
  FROM f
),
k AS (SELECT count(*) FILTER (WHERE counted) AS places FROM s),
occ AS (
  UPDATE venues_venue SET occupancy = venues_venue.occupancy - k.places FROM k
  WHERE venues_venue.id = {1} AND k.places > 0 AND venues_venue.occupancy >= k.places
  RETURNING venues_venue.occupancy
),
claim AS (
  UPDATE venues_presence SET inside = FALSE, exited_at = {6}
  WHERE venue_id = {1} AND inside
    AND subject_id = ANY(ARRAY(SELECT subject_id FROM s WHERE s.planned))
    AND ((SELECT places FROM k) = 0 OR EXISTS (SELECT 1 FROM occ))
  RETURNING subject_id
),
outside AS (
  INSERT INTO venues_presence (venue_id, subject_id, inside, exited_at)
  SELECT {1}, s.subject_id, FALSE, {6} FROM s
  WHERE s.planned AND NOT s.inside AND s.subject_id IS NOT NULL
  ON CONFLICT (venue_id, subject_id) DO UPDATE SET exited_at = excluded.exited_at
  WHERE venues_presence.inside = FALSE
    AND (venues_presence.exited_at IS NULL OR venues_presence.exited_at < excluded.exited_at)
),
visit AS (
  DELETE FROM venues_admission WHERE key = ANY({3}::text[])
    AND EXISTS (SELECT 1 FROM s WHERE s.planned)
),"""
_PARTY_TAIL = """
ent AS (
  INSERT INTO venues_entry (venue_id, gate_id, scan_id, body_hash, direction, decision,
    reason, subject_id, code_id, reservation_id, counted, response, offline, credential,
    scanned_at, recorded_at)
  SELECT {1}, {4}, s.scan_id, s.body_hash, {5}, s.decision, s.final_reason, s.subject_id,
    s.code_id, s.reservation_id, s.counted,
    s.response || jsonb_build_object('decision', s.decision, 'reason', s.final_reason,
      'occupancy', COALESCE((SELECT occupancy FROM occ), v.occupancy)),
    FALSE, {7}, {8}, {6}
  FROM s, v WHERE v.go ORDER BY s.i
  RETURNING scan_id, decision, reason, counted, (response->>'occupancy')::int AS occupancy
)
SELECT ent.*, CAST(CASE WHEN
    ((SELECT places FROM k) = 0 OR NOT EXISTS (SELECT 1 FROM s WHERE s.counted)
     OR EXISTS (SELECT 1 FROM occ))
    AND (SELECT count(*) FROM claim) = (SELECT count(*) FROM s WHERE s.counted)
    AND NOT EXISTS (SELECT 1 FROM claim c
                    WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.counted
                                      AND s.subject_id = c.subject_id))
  THEN '1' ELSE 'venues_scan_raced' END AS integer) AS settled
FROM ent
"""
_PARTY_SQL = {
    Direction.IN: "".join((_PARTY_HEAD, _ENTER_CTES, _PARTY_TAIL)),
    Direction.OUT: "".join((_PARTY_HEAD, _EXIT_CTES, _PARTY_TAIL)),
}
RACED = "venues_scan_raced"
RACE_TRIES = 8  # a race needs a concurrent commit in between; each try sees more


async def record_party(scan: PartyScan) -> list[RecordedScan] | None:
    """Decide and record a party's scan atomically: one entry per person, presence and
    occupancy moved for everyone counted or for nobody. None when the holder's admission key
    is already held (the scan repeats that admission; nothing was written). Raises
    IntegrityError when a concurrent scan took the scan_id or the admission key first."""
    client = Venue._meta.db
    for _ in range(RACE_TRIES):
        try:
            if client.capabilities.dialect == "postgres":
                return await _record_party_pg(client, scan)
            return await _record_party_sqlite(scan)
        except ScanRaced:
            pass
        except OperationalError as exc:
            # A guarded write disagreed with the snapshot (the cast above), or two of the
            # statement's parts met on one row a concurrent scan changed: roll back, retry.
            if not _raced(exc):
                raise
    raise ScanContended()


def _raced(exc: Exception) -> bool:
    text = str(exc)
    return RACED in text or "a second time" in text or "invisible tuple" in text


async def _record_party_pg(client: Any, scan: PartyScan) -> list[RecordedScan] | None:
    entering = scan.direction == Direction.IN
    sql = sql_for(client, _PARTY_SQL[scan.direction], 9)
    args: list[Any] = [
        party_json(scan.members),
        scan.venue_id,
        scan.admission_key,
        scan.anti_passback if entering else list(scan.visit_keys),
        scan.gate_id,
        scan.direction.value,
        scan.recorded_at,
        scan.credential,
        scan.scanned_at,
    ]
    rows = await client.execute_query_dict(sql, args)
    if not rows:
        return None
    settled = {row["scan_id"]: row for row in rows}
    return [
        _answered(m, row["decision"], row["reason"], bool(row["counted"]), row["occupancy"])
        for m in scan.members
        for row in (settled[m.scan_id],)
    ]


def party_json(members: Sequence[PartyMember]) -> str:
    """The party as the statement reads it (`jsonb_to_recordset`), numbered from 1."""
    return json.dumps(
        [
            {
                "subject_id": m.subject_id,
                "planned": m.planned.admitted,
                "reason": m.planned.reason,
                "fixed": m.fixed,
                "scan_id": m.scan_id,
                "body_hash": m.body_hash,
                "code_id": m.code_id,
                "reservation_id": m.reservation_id,
                "response": m.response,
                "i": i,
            }
            for i, m in enumerate(members, start=1)
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _answered(
    member: PartyMember, decision: str, reason: str, counted: bool, occupancy: int
) -> RecordedScan:
    """A member's recorded scan: its answer is the planned one with the settled decision
    and the occupancy after the scan (what the entry row stores)."""
    response = {**member.response, "decision": decision, "reason": reason, "occupancy": occupancy}
    return RecordedScan(member.scan_id, decision, reason, counted, response)


async def _record_party_sqlite(scan: PartyScan) -> list[RecordedScan] | None:
    """The same decision as the PostgreSQL statement, in one transaction: SQLite runs one
    writer at a time, so what is read here is still true when it is written."""
    async with in_transaction():
        if scan.admission_key and await Admission.exists(key=scan.admission_key):
            return None
        venue = await Venue.get(id=scan.venue_id).only("id", "occupancy", "capacity")
        subjects = [m.subject_id for m in scan.members if m.subject_id]
        found = await Presence.filter(
            venue_id=scan.venue_id, subject_id__in=subjects, inside=True
        ).values_list("subject_id", flat=True)
        inside_now = {str(s) for s in found}
        inside = [m.subject_id in inside_now for m in scan.members]
        if scan.direction == Direction.IN:
            settled = pol.settle_party(
                [m.planned for m in scan.members],
                inside,
                anti_passback=scan.anti_passback,
                occupancy=venue.occupancy,
                capacity=venue.capacity,
                holder_fixed=scan.members[0].fixed,
            )
            decisions, counted = settled.decisions, settled.counted
        else:
            decisions = tuple(m.planned for m in scan.members)
            counted = tuple(
                m.planned.admitted and i for m, i in zip(scan.members, inside, strict=True)
            )
        after = await _apply_sqlite(scan, decisions, counted, venue.occupancy)
        recorded = []
        for member, decision, is_counted in zip(scan.members, decisions, counted, strict=True):
            answered = _answered(
                member, decision.decision.value, decision.reason, is_counted, after
            )
            await Entry.create(
                venue_id=scan.venue_id,
                gate_id=scan.gate_id,
                scan_id=member.scan_id,
                body_hash=member.body_hash,
                direction=scan.direction.value,
                decision=decision.decision.value,
                reason=decision.reason,
                subject_id=member.subject_id,
                code_id=member.code_id,
                reservation_id=member.reservation_id,
                counted=is_counted,
                response=answered.response,
                credential=scan.credential,
                scanned_at=scan.scanned_at,
                recorded_at=scan.recorded_at,
            )
            recorded.append(answered)
        return recorded


async def _apply_sqlite(
    scan: PartyScan,
    decisions: Sequence[pol.Decision],
    counted: Sequence[bool],
    occupancy_now: int,
) -> int:
    """Move presence, occupancy, the admission and reservations for a settled party; the
    occupancy after."""
    at = scan.recorded_at
    holder = scan.members[0]
    if scan.direction == Direction.IN:
        if scan.admission_key and not holder.fixed and decisions[0].admitted:
            await Admission.create(
                key=scan.admission_key,
                venue_id=scan.venue_id,
                gate_id=scan.gate_id,
                scan_id=holder.scan_id,
                admitted_at=at,
            )
        for member, is_counted in zip(scan.members, counted, strict=True):
            if is_counted and member.subject_id:
                if not await claim_inside(scan.venue_id, member.subject_id, at):
                    raise ScanRaced()
                if member.reservation_id is not None:
                    await Reservation.filter(id=member.reservation_id, used_at=None).update(
                        used_at=at
                    )
    else:
        for member, decision, is_counted in zip(scan.members, decisions, counted, strict=True):
            left = decision.admitted and member.subject_id is not None
            if left and await leave(scan.venue_id, str(member.subject_id), at) != is_counted:
                raise ScanRaced()
        if any(d.admitted for d in decisions) and scan.visit_keys:
            await Admission.filter(key__in=list(scan.visit_keys)).delete()
    places = sum(counted)
    if places == 0:
        return occupancy_now
    after = await bump_occupancy(
        scan.venue_id, places if scan.direction == Direction.IN else -places
    )
    if after is None:
        raise ScanRaced()
    return after
