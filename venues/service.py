"""The venues domain's operations: venues and gates, slots and reservations, the gate
decision with its atomic occupancy, offline bundles and sync, check-ins, purge.

Counters that must never overshoot (a slot's `booked`, a venue's `occupancy`) change only
through conditional UPDATEs whose WHERE clause holds the limit, inside the transaction
that records why they changed; the database serialises concurrent writers on the row.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import IdempotencyKeyReused
from app.idempotency import canonical_hash
from auth import service as auth_service
from auth.principal import Principal
from codes import pseudonym as code_days
from codes import service as codes_service
from codes import verifier
from venues import policy as pol
from venues.errors import (
    AlreadyBooked,
    AnnulWindowPassed,
    CancellationClosed,
    DirectionNotSupported,
    GateNotFound,
    ReservationNotFound,
    ScanClockSkewed,
    ScanNotAnnullable,
    ScanNotFound,
    SlotFull,
    SlotInvalid,
    SlotNotFound,
    VenueNotFound,
)
from venues.models import (
    DailyCount,
    Entry,
    Gate,
    NoShow,
    Presence,
    Reservation,
    Seat,
    Slot,
    Suspension,
    Venue,
    Visit,
)
from venues.offline_gate import reservation_hash
from venues.rules import VenueRules, check_booking, may_cancel, suspension_until

NAME = "venues"
BUNDLE_PURPOSE = "bundles"
BUNDLE_TYPE = "suishen-gate-bundle+jws"


@dataclass(frozen=True)
class VenueSnapshot:
    """What a scan needs of its venue; kept for VENUE_CACHE_S (an edit in another process
    reaches gates within that time; the occupancy is never read from it)."""

    id: str
    capacity: int
    policy: pol.VenuePolicy
    read_at: float


VENUE_CACHE_S = 2.0


@dataclass
class VenuesRuntime:
    rules: VenueRules
    # client id -> (venue id, direction). Gates never move between venues.
    gates: dict[str, tuple[str, str]] = field(default_factory=dict)
    venues: dict[str, VenueSnapshot] = field(default_factory=dict)


def build_runtime(ctx: AppContext) -> VenuesRuntime:
    return VenuesRuntime(VenueRules.from_extra(ctx.settings.extra))


def runtime(ctx: AppContext) -> VenuesRuntime:
    rt: VenuesRuntime = ctx.extensions[NAME]
    return rt


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


# -- venues and gates ---------------------------------------------------------------


def policy_of(venue: Venue) -> pol.VenuePolicy:
    raw: dict[str, Any] = venue.policy or {}
    return pol.VenuePolicy(
        allowed_statuses=frozenset(raw.get("allowed_statuses", ["green"])),
        reservation_required=bool(raw.get("reservation_required", False)),
        anti_passback=bool(raw.get("anti_passback", True)),
        reentry_allowed=bool(raw.get("reentry_allowed", True)),
        min_age=raw.get("min_age"),
    )


async def create_venue(
    ctx: AppContext,
    *,
    name: str,
    kind: str,
    district: str,
    address: str,
    opening_hours: dict[str, str],
    capacity: int,
    policy: dict[str, Any],
) -> Venue:
    now = ctx.clock.now()
    venue_id = _new_id("ven")
    return await Venue.create(
        id=venue_id,
        name=name,
        kind=kind,
        district=district,
        address=address,
        opening_hours=opening_hours,
        capacity=capacity,
        policy=policy,
        # Signed once: the printed poster stays valid as long as the venue exists.
        place_code=codes_service.sign_place_code(ctx, venue_id),
        created_at=now,
        updated_at=now,
    )


async def get_venue(venue_id: str) -> Venue:
    venue = await Venue.get_or_none(id=venue_id)
    if venue is None:
        raise VenueNotFound()
    return venue


async def list_venues(*, kind: str | None = None, district: str | None = None) -> list[Venue]:
    query = Venue.all().order_by("created_at", "id")
    if kind:
        query = query.filter(kind=kind)
    if district:
        query = query.filter(district=district)
    return await query.limit(500)


async def update_venue(ctx: AppContext, venue_id: str, changes: dict[str, Any]) -> Venue:
    venue = await get_venue(venue_id)
    if changes:
        changes["updated_at"] = ctx.clock.now()
        await Venue.filter(id=venue_id).update(**changes)
        await venue.refresh_from_db()
        runtime(ctx).venues.pop(venue_id, None)
    return venue


@dataclass(frozen=True)
class RegisteredGate:
    gate: Gate
    client_secret: str
    scope: str


async def register_gate(
    ctx: AppContext, venue_id: str, *, name: str, direction: str, actor: Principal | str
) -> RegisteredGate:
    """A gate and its machine client; the secret is in this answer only."""
    await get_venue(venue_id)
    creds = await auth_service.create_client(ctx, "gate", venue_id, actor=actor)
    gate = await Gate.create(
        id=creds.client_id,
        venue_id=venue_id,
        name=name,
        direction=direction,
        client_id=creds.client_id,
        created_at=ctx.clock.now(),
    )
    runtime(ctx).gates[creds.client_id] = (venue_id, direction)
    return RegisteredGate(gate, creds.client_secret, creds.scope)


@dataclass(frozen=True)
class GateRef:
    id: str
    venue_id: str
    direction: str


async def gate_for(ctx: AppContext, principal: Principal) -> GateRef:
    """The gate a gate token speaks for (registered through POST /v1/venues/{id}/gates)."""
    rt = runtime(ctx)
    known = rt.gates.get(principal.id)
    if known is None:
        gate = await Gate.get_or_none(id=principal.id)
        if gate is None or gate.venue_id != principal.tenant_id:
            raise GateNotFound("this client is not a registered gate")
        known = rt.gates[principal.id] = (gate.venue_id, gate.direction)
    return GateRef(principal.id, known[0], known[1])


# -- slots and reservations -----------------------------------------------------------


async def create_slot(
    ctx: AppContext,
    venue_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    walk_in: int,
) -> Slot:
    await get_venue(venue_id)
    if ends_at <= starts_at:
        raise SlotInvalid("ends_at must be after starts_at")
    if walk_in > capacity:
        raise SlotInvalid("walk_in cannot exceed capacity")
    if ends_at <= ctx.clock.now():
        raise SlotInvalid("the slot is already over")
    return await Slot.create(
        id=_new_id("slot"),
        venue_id=venue_id,
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        walk_in=walk_in,
        created_at=ctx.clock.now(),
    )


async def list_slots(ctx: AppContext, venue_id: str, day: date | None) -> list[Slot]:
    await get_venue(venue_id)
    rules = runtime(ctx).rules
    query = Slot.filter(venue_id=venue_id)
    if day is not None:
        start, end = rules.day_bounds(day)
        query = query.filter(starts_at__gte=start, starts_at__lt=end)
    else:
        query = query.filter(ends_at__gt=ctx.clock.now())
    return await query.order_by("starts_at").limit(500)


@dataclass(frozen=True)
class Booking:
    reservation: Reservation
    slot: Slot


async def _party(principal: Principal, dependents: Sequence[str]) -> list[str]:
    booker = await auth_service.subject_for_request(principal, None)
    party = [booker]
    for dependent_id in dependents:
        subject = await auth_service.subject_for_request(principal, dependent_id)
        if subject not in party:
            party.append(subject)
    return party


async def book(
    ctx: AppContext, principal: Principal, slot_id: str, dependents: Sequence[str]
) -> Booking:
    """Book a slot for the resident and the dependents they guard: never overbooked."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    party = await _party(principal, dependents)
    slot = await Slot.get_or_none(id=slot_id)
    if slot is None:
        raise SlotNotFound()
    suspension = await Suspension.get_or_none(subject_id=party[0])
    check_booking(
        rt.rules,
        now=now,
        slot_starts_at=slot.starts_at,
        slot_ends_at=slot.ends_at,
        party_size=len(party),
        suspended_until=suspension.until if suspension is not None else None,
    )
    n = len(party)
    day = rt.rules.local_day(slot.starts_at)
    reservation = Reservation(
        id=_new_id("res"),
        slot_id=slot.id,
        venue_id=slot.venue_id,
        day=day,
        account_id=principal.id,
        booker_subject_id=party[0],
        party_size=n,
        status="booked",
        created_at=now,
    )
    try:
        async with in_transaction():
            # The WHERE clause is the capacity check: a concurrent booking that took the
            # last places makes this update match no row, whatever this request read.
            taken = await Slot.filter(
                id=slot.id, booked__lte=F("capacity") - (F("walk_in") + n)
            ).update(booked=F("booked") + n)
            if taken == 0:
                raise SlotFull(extra={"slot_id": slot.id})
            await reservation.save(force_create=True)
            await Seat.bulk_create(
                [
                    Seat(
                        reservation_id=reservation.id,
                        venue_id=slot.venue_id,
                        day=day,
                        subject_id=subject,
                        starts_at=slot.starts_at,
                        ends_at=slot.ends_at,
                    )
                    for subject in party
                ]
            )
    except IntegrityError:
        # The seats' unique key: someone in the party holds a booking there that day.
        # The transaction rolled back, so the slot's places were given back too.
        raise AlreadyBooked("someone in the party already has a booking here that day") from None
    await slot.refresh_from_db()
    return Booking(reservation, slot)


async def cancel_reservation(ctx: AppContext, principal: Principal, reservation_id: str) -> Booking:
    now = ctx.clock.now()
    reservation = await Reservation.get_or_none(id=reservation_id, account_id=principal.id)
    if reservation is None:
        raise ReservationNotFound()
    slot = await Slot.get(id=reservation.slot_id)
    if reservation.status == "cancelled":
        return Booking(reservation, slot)
    if reservation.status != "booked" or not may_cancel(now=now, slot_starts_at=slot.starts_at):
        raise CancellationClosed("the slot has started; the booking can no longer be cancelled")
    async with in_transaction():
        changed = await Reservation.filter(id=reservation.id, status="booked").update(
            status="cancelled", cancelled_at=now
        )
        if changed:
            await Seat.filter(reservation_id=reservation.id).delete()
            await Slot.filter(id=slot.id, booked__gte=reservation.party_size).update(
                booked=F("booked") - reservation.party_size
            )
    await reservation.refresh_from_db()
    await slot.refresh_from_db()
    return Booking(reservation, slot)


async def count_no_shows(ctx: AppContext) -> int:
    """Slots that ended: each booking nobody of its party used is a no-show of the booker,
    and enough no-shows in the window suspend the booker's booking."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    counted = 0
    ended = await Slot.filter(ends_at__lte=now, no_shows_counted=False).limit(500)
    for slot in ended:
        async with in_transaction():
            # Claiming the slot makes the count happen once even with several workers.
            if not await Slot.filter(id=slot.id, no_shows_counted=False).update(
                no_shows_counted=True
            ):
                continue
            missed = await Reservation.filter(slot_id=slot.id, status="booked", used_at=None)
            for reservation in missed:
                if await _party_entered(reservation, slot, rt.rules):
                    continue
                await Reservation.filter(id=reservation.id).update(status="no_show")
                await NoShow.create(
                    subject_id=reservation.booker_subject_id,
                    venue_id=reservation.venue_id,
                    reservation_id=reservation.id,
                    at=slot.ends_at,
                )
                counted += 1
                times = await NoShow.filter(
                    subject_id=reservation.booker_subject_id,
                    at__gt=now - timedelta(days=rt.rules.no_show_window_days),
                ).values_list("at", flat=True)
                until = suspension_until(rt.rules, list(times), now)  # type: ignore[arg-type]
                if until is not None:
                    await _suspend(reservation.booker_subject_id, until)
    return counted


async def _party_entered(reservation: Reservation, slot: Slot, rules: VenueRules) -> bool:
    """Whether someone of the party was admitted during the slot's window. Venues that do
    not require reservations never mark bookings used at the gate, so this asks the
    entries instead (only when a slot ends, off the scan path)."""
    subjects = await Seat.filter(reservation_id=reservation.id).values_list("subject_id", flat=True)
    return await Entry.filter(
        venue_id=reservation.venue_id,
        subject_id__in=list(subjects),
        direction="in",
        decision=pol.ADMIT,
        annulled_at=None,
        scanned_at__gte=slot.starts_at - rules.early_entry,
        scanned_at__lt=slot.ends_at,
    ).exists()


async def _suspend(subject_id: str, until: datetime) -> None:
    current = await Suspension.get_or_none(subject_id=subject_id)
    if current is None:
        await Suspension.create(subject_id=subject_id, until=until)
    elif current.until < until:
        await Suspension.filter(subject_id=subject_id).update(until=until)


# -- the gate decision ----------------------------------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    scan_id: str
    code: str
    direction: str
    scanned_at: datetime | None


def _replay(existing: Entry | None, digest: str) -> dict[str, Any] | None:
    if existing is None:
        return None
    if existing.body_hash != digest:
        raise IdempotencyKeyReused(
            "this scan_id was used for another scan", extra={"scan_id": existing.scan_id}
        )
    response: dict[str, Any] = existing.response
    return response


def _check_scan(rules: VenueRules, gate: GateRef, scan: ScanRequest, now: datetime) -> datetime:
    if gate.direction != "both" and gate.direction != scan.direction:
        raise DirectionNotSupported(f"this gate scans direction {gate.direction!r} only")
    scanned_at = scan.scanned_at or now
    if abs((scanned_at - now).total_seconds()) > rules.scan_skew_seconds:
        raise ScanClockSkewed(
            f"scanned_at is more than {rules.scan_skew_seconds}s from the server clock; "
            "offline scans go to POST /v1/gates/sync",
            extra={"server_time": now.isoformat()},
        )
    return scanned_at


async def scan(ctx: AppContext, gate: GateRef, request: ScanRequest) -> dict[str, Any]:
    """Decide one online scan and record it; the same scan_id answers the same again."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    scanned_at = _check_scan(rt.rules, gate, request, now)
    digest = canonical_hash(
        {
            "scan_id": request.scan_id,
            "code": request.code,
            "direction": request.direction,
            "scanned_at": request.scanned_at.isoformat() if request.scanned_at else None,
        }
    )
    # No lookup of the scan_id first: the entry's unique key catches a repeat when it is
    # inserted (rolling its effects back), which keeps the first scan one query shorter.
    verdict = await codes_service.verify_code(ctx, request.code, verifier_id=gate.id)
    venue = await _venue_snapshot(ctx, gate.venue_id)
    outcome = await _decide(ctx, venue, verdict, request.direction, now)
    entry = Entry(
        venue_id=venue.id,
        gate_id=gate.id,
        scan_id=request.scan_id,
        body_hash=digest,
        direction=request.direction,
        decision=outcome.decision.decision,
        reason=outcome.decision.reason,
        subject_id=verdict.subject_id,
        code_id=verdict.code_id,
        reservation_id=outcome.reservation_id,
        scanned_at=scanned_at,
        recorded_at=now,
    )
    display = {
        "masked_name": verdict.masked_name,
        "status": verdict.status or verdict.issued_status,
    }
    for attempt in (1, 2):
        try:
            async with in_transaction():
                decision, counted, occupancy = await _apply(
                    venue, verdict.subject_id, request.direction, outcome, now
                )
                entry.decision, entry.reason = decision.decision, decision.reason
                entry.counted = counted
                entry.response = {
                    "scan_id": request.scan_id,
                    "decision": decision.decision,
                    "reason": decision.reason,
                    "display": display,
                    "occupancy": occupancy,
                    "capacity": venue.capacity,
                    "direction": request.direction,
                    "scanned_at": scanned_at.isoformat(),
                }
                await entry.save(force_create=True)
            break
        except IntegrityError:
            # A concurrent request with this scan_id committed first (ours rolled back
            # whole), or one for the same person created their presence row: run again.
            existing = await Entry.get_or_none(gate_id=gate.id, scan_id=request.scan_id)
            replayed = _replay(existing, digest)
            if replayed is not None:
                return replayed
            if attempt == 2:
                raise
            entry.id = None
    response: dict[str, Any] = entry.response
    return response


@dataclass(frozen=True)
class Outcome:
    decision: pol.Decision
    anti_passback: bool
    reservation_id: str | None = None


async def _venue_snapshot(ctx: AppContext, venue_id: str) -> VenueSnapshot:
    rt = runtime(ctx)
    now = time.monotonic()
    cached = rt.venues.get(venue_id)
    if cached is not None and now - cached.read_at < VENUE_CACHE_S:
        return cached
    venue = await Venue.get_or_none(id=venue_id).only("id", "capacity", "policy")
    if venue is None:
        raise VenueNotFound()
    snapshot = VenueSnapshot(venue.id, venue.capacity, policy_of(venue), now)
    rt.venues[venue_id] = snapshot
    return snapshot


async def _decide(
    ctx: AppContext,
    venue: VenueSnapshot,
    verdict: codes_service.Verification,
    direction: str,
    now: datetime,
) -> Outcome:
    """The policy on a snapshot; `_apply` then enforces its counters atomically."""
    rules = runtime(ctx).rules
    policy = venue.policy
    if not verdict.valid or verdict.subject_id is None:
        return Outcome(pol.deny(verdict.reason), policy.anti_passback)
    subject_id = verdict.subject_id
    if direction == "out":
        return Outcome(pol.admit(), policy.anti_passback)
    # Whether the holder is inside is decided by the atomic claim in `_apply` (the
    # anti-passback step comes after every check made here); the row is read only for
    # the re-entry rule.
    presence = None
    if not policy.reentry_allowed:
        presence = await Presence.get_or_none(venue_id=venue.id, subject_id=subject_id)
    age = None
    if policy.min_age is not None:
        profile = await auth_service.subject_profile(subject_id, now=now)
        if profile is not None:
            age = pol.age_on(profile.birth_date, rules.local_day(now))
    seats: list[Seat] = []
    if policy.reservation_required:
        seats = await Seat.filter(
            venue_id=venue.id,
            subject_id=subject_id,
            ends_at__gt=now,
            starts_at__lte=now + rules.early_entry,
        )
    today = rules.local_day(now)
    facts = pol.ScanFacts(
        now=now,
        code_valid=True,
        code_reason=verdict.reason,
        status=verdict.status,
        age=age,
        reservations=[pol.SlotWindow(s.starts_at, s.ends_at) for s in seats],
        inside=bool(presence is not None and presence.inside),
        exited_today=(
            presence is not None
            and presence.exited_at is not None
            and rules.local_day(presence.exited_at) == today
        ),
        # Capacity is decided by the atomic update in `_apply`, never on a stale count.
        occupancy=0,
        capacity=venue.capacity,
    )
    decision = pol.decide_entry(policy, facts, rules.early_entry)
    reservation_id = None
    if decision.admitted and seats:
        window = pol.current_reservation(facts.reservations, now, rules.early_entry)
        reservation_id = next(
            (s.reservation_id for s in seats if window and s.starts_at == window.starts_at), None
        )
    return Outcome(decision, policy.anti_passback, reservation_id)


async def _apply(
    venue: VenueSnapshot, subject_id: str | None, direction: str, outcome: Outcome, now: datetime
) -> tuple[pol.Decision, bool, int]:
    """Inside the scan's transaction: move presence and occupancy for an admit, or turn it
    into a deny when a concurrent scan got there first. Returns (decision, counted, occupancy)."""
    decision = outcome.decision
    if not decision.admitted or subject_id is None:
        return decision, False, await _occupancy(venue.id)
    if direction == "out":
        left = await Presence.filter(venue_id=venue.id, subject_id=subject_id, inside=True).update(
            inside=False, exited_at=now
        )
        if not left:
            # Already outside: a repeated exit scan, nothing to count.
            if await Presence.filter(venue_id=venue.id, subject_id=subject_id).update(
                exited_at=now
            ):
                return decision, False, await _occupancy(venue.id)
            # Never seen entering (admitted offline, not yet synced): they still leave.
            await Presence.create(
                venue_id=venue.id, subject_id=subject_id, inside=False, exited_at=now
            )
        after = await _bump_occupancy(venue.id, -1)
        if after is not None:
            return decision, True, after
        return decision, False, 0
    # Entry: claim "inside" for this subject, then a place; either may lose a race.
    if not await _claim_inside(venue.id, subject_id, now):
        if outcome.anti_passback:
            return pol.deny(pol.ALREADY_INSIDE), False, await _occupancy(venue.id)
        # Without anti-passback a second entry is let through but already counted.
        return decision, False, await _occupancy(venue.id)
    after = await _bump_occupancy(venue.id, +1)
    if after is None:
        await Presence.filter(venue_id=venue.id, subject_id=subject_id).update(inside=False)
        return pol.deny(pol.VENUE_FULL), False, venue.capacity
    if outcome.reservation_id is not None:
        await Reservation.filter(id=outcome.reservation_id, used_at=None).update(used_at=now)
    return decision, True, after


def _placeholders(n: int) -> list[str]:
    dialect = Venue._meta.db.capabilities.dialect
    return [f"${i}" if dialect == "postgres" else "?" for i in range(1, n + 1)]


# Inserts the presence row inside, or flips an outside one; no row comes back when the
# subject is inside already. One statement, so two gates cannot both claim the subject.
_CLAIM_SQL = (
    "INSERT INTO venues_presence (venue_id, subject_id, inside, entered_at) "
    "VALUES ({0}, {1}, TRUE, {2}) ON CONFLICT (venue_id, subject_id) DO UPDATE "
    "SET inside = TRUE, entered_at = excluded.entered_at "
    "WHERE venues_presence.inside = FALSE RETURNING id"
)


async def _claim_inside(venue_id: str, subject_id: str, now: datetime) -> bool:
    sql = _CLAIM_SQL.format(*_placeholders(3))
    rows = await Venue._meta.db.execute_query_dict(sql, [venue_id, subject_id, now])
    return bool(rows)


_BUMP_SQL = {
    +1: "UPDATE venues_venue SET occupancy = occupancy + 1 "
    "WHERE id = {p} AND occupancy < capacity RETURNING occupancy",
    -1: "UPDATE venues_venue SET occupancy = occupancy - 1 "
    "WHERE id = {p} AND occupancy > 0 RETURNING occupancy",
}


async def _bump_occupancy(venue_id: str, delta: int) -> int | None:
    """One conditional UPDATE ... RETURNING (SQLite and PostgreSQL both have it): the new
    occupancy, or None when the bound (capacity, or zero) was reached."""
    client = Venue._meta.db
    sql = _BUMP_SQL[delta].format(p=_placeholders(1)[0])
    # execute_query_dict: the asyncpg client's execute_query drops RETURNING rows of UPDATEs.
    rows = await client.execute_query_dict(sql, [venue_id])
    return int(rows[0]["occupancy"]) if rows else None


_OCCUPANCY_SQL = "SELECT occupancy FROM venues_venue WHERE id = {p}"


async def _occupancy(venue_id: str) -> int:
    # Raw and narrow: read on every deny, so the ORM's model building is not worth it.
    sql = _OCCUPANCY_SQL.format(p=_placeholders(1)[0])
    rows = await Venue._meta.db.execute_query_dict(sql, [venue_id])
    return int(rows[0]["occupancy"]) if rows else 0


async def annul_scan(ctx: AppContext, gate: GateRef, scan_id: str) -> tuple[Entry, int]:
    """Undo an admitted entry the turnstile did not let through, within the window."""
    rules = runtime(ctx).rules
    now = ctx.clock.now()
    entry = await Entry.get_or_none(gate_id=gate.id, scan_id=scan_id)
    if entry is None:
        raise ScanNotFound()
    if entry.annulled_at is not None:
        return entry, await _occupancy(entry.venue_id)
    if entry.decision != pol.ADMIT or entry.direction != "in" or entry.offline:
        raise ScanNotAnnullable("only an admitted online entry can be annulled")
    if now - entry.recorded_at > timedelta(seconds=rules.annul_window_seconds):
        raise AnnulWindowPassed(
            f"an admit can be annulled within {rules.annul_window_seconds}s only"
        )
    async with in_transaction():
        if await Entry.filter(id=entry.id, annulled_at=None).update(annulled_at=now):
            if entry.counted:
                await Venue.filter(id=entry.venue_id, occupancy__gt=0).update(
                    occupancy=F("occupancy") - 1
                )
                await Presence.filter(
                    venue_id=entry.venue_id, subject_id=entry.subject_id, inside=True
                ).update(inside=False)
            if entry.reservation_id is not None:
                await Reservation.filter(id=entry.reservation_id, used_at=now).update(used_at=None)
    await entry.refresh_from_db()
    return entry, await _occupancy(entry.venue_id)


# -- offline bundle and sync ------------------------------------------------------------


def bundle_keys(ctx: AppContext) -> dict[str, Any]:
    """JWK Set of the keys offline bundles are signed with (retired ones while a bundle
    they signed may still be in use)."""
    window = timedelta(hours=runtime(ctx).rules.bundle_hours)
    keys = ctx.keys.signing[BUNDLE_PURPOSE].verification_keys(window)
    out = []
    for key in keys.values():
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key, as_dict=True)
        jwk.update({"kid": key.kid, "alg": "ES256", "use": "sig"})
        out.append(jwk)
    return {"keys": out}


@dataclass(frozen=True)
class SignedBundle:
    token: str
    kid: str
    expires_at: datetime
    document: dict[str, Any]


async def offline_bundle(ctx: AppContext, gate: GateRef) -> SignedBundle:
    """What a gate needs to decide without the network for the next N hours. Reservations
    appear only as HMACs (fresh salt per bundle) of the holders' daily code pseudonyms."""
    rules = runtime(ctx).rules
    now = ctx.clock.now()
    expires = now + timedelta(hours=rules.bundle_hours)
    venue = await get_venue(gate.venue_id)
    first_day = code_days.day_of(int(now.timestamp()))
    last_day = code_days.day_of(int(expires.timestamp()))
    days = list(range(first_day, last_day + 1))
    salt = secrets.token_bytes(16)
    seats = await Seat.filter(
        venue_id=venue.id, ends_at__gt=now, starts_at__lt=expires + rules.early_entry
    ).order_by("starts_at")
    reservations = []
    for seat in seats:
        # A code opens to the pseudonym of the day it was issued: list the holder under
        # every day the admission window touches (early entry may start the day before).
        first = code_days.day_of(int((seat.starts_at - rules.early_entry).timestamp()))
        last = code_days.day_of(int(seat.ends_at.timestamp()))
        for day in range(first, last + 1):
            alias = await codes_service.daily_pseudonym(ctx, seat.subject_id, day)
            reservations.append(
                {
                    "h": reservation_hash(salt, alias),
                    "starts_at": seat.starts_at.isoformat(),
                    "ends_at": seat.ends_at.isoformat(),
                }
            )
    revoked: list[str] = []
    cursor = 0
    while True:
        page = await codes_service.revocations_since(ctx, cursor)
        revoked.extend(e.code_id for e in page.entries)
        cursor = page.next_cursor
        if not page.has_more:
            break
    policy = policy_of(venue)
    document = {
        "typ": "suishen-gate-bundle",
        "venue_id": venue.id,
        "gate_id": gate.id,
        "direction": gate.direction,
        "issued_at": now.isoformat(),
        "expires_at": expires.isoformat(),
        "capacity": venue.capacity,
        "occupancy": venue.occupancy,
        "policy": {
            "allowed_statuses": sorted(policy.allowed_statuses),
            "reservation_required": policy.reservation_required,
            "anti_passback": policy.anti_passback,
            "reentry_allowed": policy.reentry_allowed,
            "min_age": policy.min_age,
        },
        "early_entry_minutes": rules.early_entry_minutes,
        "code_keys": codes_service.public_keys(ctx),
        "gate_keys": {str(d): k for d, k in codes_service.gate_token_keys(ctx, days).items()},
        "revoked_code_ids": revoked,
        "revocations_cursor": cursor,
        "reservation_salt": salt.hex(),
        "reservations": reservations,
    }
    key = ctx.keys.signing[BUNDLE_PURPOSE].active()
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    token = jwt.api_jws.PyJWS().encode(
        body.encode(),
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": BUNDLE_TYPE},
    )
    return SignedBundle(token, key.kid, expires, document)


@dataclass(frozen=True)
class OfflineScan:
    scan_id: str
    code: str
    direction: str
    scanned_at: datetime
    decision: str
    reason: str


@dataclass(frozen=True)
class SyncedScan:
    scan_id: str
    outcome: str  # recorded / duplicate / conflict
    conflicts: list[str]


CODE_ADMITTED_ELSEWHERE = "code_admitted_elsewhere"
CODE_REVOKED = "code_revoked"
CODE_INVALID = "code_invalid"
CAPACITY_OVERRUN = "capacity_overrun"
SCAN_ID_REUSED = "scan_id_reused"


async def sync_offline(
    ctx: AppContext, gate: GateRef, scans: Sequence[OfflineScan]
) -> tuple[list[SyncedScan], int]:
    """Record scans a gate decided offline, keeping its scan times. What the gate decided
    stands (the turnstile turned); what the server knows better is reported as conflicts."""
    now = ctx.clock.now()
    keys = verifier.keys_from_jwks(codes_service.public_keys(ctx))
    revoked = await _revoked_code_ids(ctx)
    results: list[SyncedScan] = []
    for item in sorted(scans, key=lambda s: s.scanned_at):
        digest = canonical_hash(
            {
                "scan_id": item.scan_id,
                "code": item.code,
                "direction": item.direction,
                "scanned_at": item.scanned_at.isoformat(),
                "decision": item.decision,
                "reason": item.reason,
                "offline": True,
            }
        )
        existing = await Entry.get_or_none(gate_id=gate.id, scan_id=item.scan_id)
        if existing is not None:
            same = existing.body_hash == digest
            results.append(
                SyncedScan(item.scan_id, "duplicate" if same else "conflict",
                           [] if same else [SCAN_ID_REUSED])
            )  # fmt: skip
            continue
        results.append(await _record_offline(ctx, gate, item, digest, keys, revoked, now))
    return results, await _occupancy(gate.venue_id)


async def _revoked_code_ids(ctx: AppContext) -> set[str]:
    revoked: set[str] = set()
    cursor = 0
    while True:
        page = await codes_service.revocations_since(ctx, cursor)
        revoked.update(e.code_id for e in page.entries)
        cursor = page.next_cursor
        if not page.has_more:
            return revoked


async def _record_offline(
    ctx: AppContext,
    gate: GateRef,
    item: OfflineScan,
    digest: str,
    keys: dict[bytes, verifier.TrustedKey],
    revoked: set[str],
    now: datetime,
) -> SyncedScan:
    skew = timedelta(seconds=30)
    result = verifier.verify(item.code, keys, (), item.scanned_at, skew)
    conflicts: list[str] = []
    admitted = item.decision == pol.ADMIT
    if admitted and not result.valid:
        conflicts.append(CODE_INVALID)
    if admitted and result.code_id is not None:
        if result.code_id in revoked:
            # Codes publishes which codes are revoked, not when: the gate had the list of
            # its bundle, so a revocation it did not know is reported for a human to judge.
            conflicts.append(CODE_REVOKED)
        elsewhere = await Entry.filter(
            venue_id=gate.venue_id, code_id=result.code_id, decision=pol.ADMIT,
            direction=item.direction, annulled_at=None,
        ).exclude(gate_id=gate.id).exists()  # fmt: skip
        if elsewhere:
            conflicts.append(CODE_ADMITTED_ELSEWHERE)
    counted = False
    try:
        async with in_transaction():
            if admitted and item.direction == "in":
                counted = bool(
                    await Venue.filter(id=gate.venue_id, occupancy__lt=F("capacity")).update(
                        occupancy=F("occupancy") + 1
                    )
                )
                if not counted:
                    conflicts.append(CAPACITY_OVERRUN)
            elif admitted:
                counted = bool(
                    await Venue.filter(id=gate.venue_id, occupancy__gt=0).update(
                        occupancy=F("occupancy") - 1
                    )
                )
            await Entry.create(
                venue_id=gate.venue_id,
                gate_id=gate.id,
                scan_id=item.scan_id,
                body_hash=digest,
                direction=item.direction,
                decision=item.decision,
                reason=item.reason,
                code_id=result.code_id,
                counted=counted,
                response={
                    "scan_id": item.scan_id,
                    "decision": item.decision,
                    "reason": item.reason,
                    "display": {"masked_name": None, "status": result.status},
                    "conflicts": conflicts,
                },
                offline=True,
                scanned_at=item.scanned_at,
                recorded_at=now,
            )
    except IntegrityError:
        # The same batch sent twice at once: the other request recorded it.
        return SyncedScan(item.scan_id, "duplicate", [])
    return SyncedScan(item.scan_id, "conflict" if conflicts else "recorded", conflicts)


# -- place codes and check-ins ---------------------------------------------------------


@dataclass(frozen=True)
class CheckIn:
    visit: Visit
    venue: Venue
    masked_name: str | None


async def check_in(
    ctx: AppContext, principal: Principal, place_code: str, dependent_id: str | None
) -> CheckIn:
    subject_id = await auth_service.subject_for_request(principal, dependent_id)
    venue_id = codes_service.verify_place_code(ctx, place_code)
    venue = await get_venue(venue_id)
    now = ctx.clock.now()
    status = await codes_service.current_status(ctx, subject_id)
    profile = await auth_service.subject_profile(subject_id, now=now)
    visit = await Visit.create(
        venue_id=venue.id, subject_id=subject_id, status=status, checked_in_at=now
    )
    return CheckIn(visit, venue, profile.masked_name if profile is not None else None)


# -- what operators and residents see ---------------------------------------------------


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
    kind: str
    venue_id: str
    venue_name: str
    at: datetime


async def my_visits(principal: Principal, limit: int = 100) -> list[VisitRecord]:
    subject_id = await auth_service.subject_for_request(principal, None)
    checkins = await Visit.filter(subject_id=subject_id).order_by("-checked_in_at").limit(limit)
    entries = (
        await Entry.filter(
            subject_id=subject_id, direction="in", decision=pol.ADMIT, annulled_at=None
        )
        .order_by("-scanned_at")
        .limit(limit)
    )
    venue_ids = {v.venue_id for v in checkins} | {e.venue_id for e in entries}
    names = dict(await Venue.filter(id__in=list(venue_ids)).values_list("id", "name"))
    records = [
        VisitRecord("checkin", v.venue_id, str(names.get(v.venue_id, "")), v.checked_in_at)
        for v in checkins
    ] + [
        VisitRecord("entry", e.venue_id, str(names.get(e.venue_id, "")), e.scanned_at)
        for e in entries
    ]
    records.sort(key=lambda r: r.at, reverse=True)
    return records[:limit]


# -- retention ----------------------------------------------------------------------------


@dataclass
class _Counts:
    admits: int = 0
    denies: int = 0
    exits: int = 0
    checkins: int = 0


async def purge(ctx: AppContext, *, batch: int = 2000) -> int:
    """Delete entries, visits, presences and past bookings older than the retention
    period, adding what is deleted to the daily counts per venue first."""
    rules = runtime(ctx).rules
    now = ctx.clock.now()
    cutoff = now - timedelta(days=rules.retention_days)
    removed = 0
    while True:
        rows = await Entry.filter(scanned_at__lt=cutoff).order_by("id").limit(batch)
        visits = await Visit.filter(checked_in_at__lt=cutoff).order_by("id").limit(batch)
        if not rows and not visits:
            break
        counts: dict[tuple[str, date], _Counts] = {}
        for entry in rows:
            c = counts.setdefault((entry.venue_id, rules.local_day(entry.scanned_at)), _Counts())
            if entry.annulled_at is not None:
                continue
            if entry.direction == "out":
                c.exits += entry.decision == pol.ADMIT
            elif entry.decision == pol.ADMIT:
                c.admits += 1
            else:
                c.denies += 1
        for visit in visits:
            key = (visit.venue_id, rules.local_day(visit.checked_in_at))
            counts.setdefault(key, _Counts()).checkins += 1
        async with in_transaction():
            for (venue_id, day), c in counts.items():
                await _add_counts(venue_id, day, c)
            await Entry.filter(id__in=[e.id for e in rows]).delete()
            await Visit.filter(id__in=[v.id for v in visits]).delete()
        removed += len(rows) + len(visits)
    removed += await Presence.filter(inside=False, exited_at__lt=cutoff).delete()
    removed += await Presence.filter(inside=False, exited_at=None, entered_at__lt=cutoff).delete()
    removed += await Reservation.filter(
        slot_id__in=[s.id for s in await Slot.filter(ends_at__lt=cutoff).only("id")]
    ).delete()
    window = max(rules.retention_days, rules.no_show_window_days)
    removed += await NoShow.filter(at__lt=now - timedelta(days=window)).delete()
    removed += await Suspension.filter(until__lt=now).delete()
    return removed


async def _add_counts(venue_id: str, day: date, c: _Counts) -> None:
    changed = await DailyCount.filter(venue_id=venue_id, day=day).update(
        admits=F("admits") + c.admits,
        denies=F("denies") + c.denies,
        exits=F("exits") + c.exits,
        checkins=F("checkins") + c.checkins,
    )
    if not changed:
        await DailyCount.create(
            venue_id=venue_id,
            day=day,
            admits=c.admits,
            denies=c.denies,
            exits=c.exits,
            checkins=c.checkins,
        )


async def daily_counts(venue_id: str) -> list[DailyCount]:
    return await DailyCount.filter(venue_id=venue_id).order_by("day")
