"""The online gate: deciding one scan (policy on a snapshot, then presence and occupancy
enforced atomically), recording it idempotently by scan_id, answering a code that already
admitted at the venue with that admission (one admission per code), and annulling an admit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import IdempotencyKeyReused
from app.idempotency import canonical_hash
from auth.api import Principal, subject_profile
from codes.api import Verification, verify_code
from venues import policy as pol
from venues import store
from venues.catalogue import GateRef, gate_for, note_contact, venue_snapshot
from venues.config import VenueRules, VenueSnapshot, VenuesRuntime
from venues.errors import (
    AnnulWindowPassed,
    DirectionNotSupported,
    ScanClockSkewed,
    ScanNotAnnullable,
    ScanNotFound,
)
from venues.models import Admission, Entry, Presence, Reservation, Seat
from venues.states import ENTRY, Direction, EntryState, entry_state


@dataclass(frozen=True)
class ScanRequest:
    scan_id: str
    code: str | None
    direction: Direction
    scanned_at: datetime | None
    id_card: str | None = None
    # "reservation", dependents chosen at the gate (refs or ids), or None: the holder alone
    companions: str | Sequence[str] | None = None


@dataclass(frozen=True)
class Outcome:
    decision: pol.Decision
    anti_passback: bool
    reservation_id: str | None = None


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
    if not gate.direction.allows(scan.direction):
        raise DirectionNotSupported(f"this gate scans direction {gate.direction.value!r} only")
    scanned_at = scan.scanned_at or now
    if abs((scanned_at - now).total_seconds()) > rules.scan_skew_seconds:
        raise ScanClockSkewed(
            f"scanned_at is more than {rules.scan_skew_seconds}s from the server clock; "
            "offline scans go to POST /v1/gates/sync",
            extra={"server_time": now.isoformat()},
        )
    return scanned_at


def _scan_digest(request: ScanRequest) -> str:
    return canonical_hash(
        {
            "scan_id": request.scan_id,
            "code": request.code,
            "direction": request.direction,
            "scanned_at": request.scanned_at.isoformat() if request.scanned_at else None,
        }
    )


def admission_key(venue_id: str, code_id: str) -> str:
    """The key of a code's one admission at a venue (`Admission.key`)."""
    return f"{venue_id}/{code_id}"


async def earlier_admission(venue_id: str, code_id: str | None) -> Entry | None:
    """The entry that admitted this code at this venue (not annulled), if any."""
    if code_id is None:
        return None
    held = await Admission.get_or_none(key=admission_key(venue_id, code_id))
    if held is None:
        return None
    return await Entry.get_or_none(gate_id=held.gate_id, scan_id=held.scan_id)


async def scan(ctx: AppContext, principal: Principal, request: ScanRequest) -> dict[str, Any]:
    """Decide one online scan at the principal's gate and record it; the same scan_id
    answers the same again, and a code that admitted here answers its admission again."""
    gate = await gate_for(ctx, principal)
    await note_contact(ctx, gate.id)
    now = ctx.clock.now()
    scanned_at = _check_scan(ctx.runtime(VenuesRuntime).rules, gate, request, now)
    # No lookup of the scan_id first: the entry's unique key catches a repeat when it is
    # inserted (rolling its effects back), which keeps the first scan one query shorter.
    verdict = await verify_code(ctx, request.code or "", verifier_id=gate.id)
    venue = await venue_snapshot(ctx, gate.venue_id)
    outcome = await _decide(ctx, venue, verdict, request.direction, now)
    entry = Entry(
        venue_id=venue.id,
        gate_id=gate.id,
        scan_id=request.scan_id,
        body_hash=_scan_digest(request),
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
    if verdict.valid and request.direction == Direction.IN and not outcome.decision.admitted:
        # The policy may refuse what this code already admitted (e.g. now "inside"): a
        # code presented again is answered with its admission, whatever the policy says.
        earlier = await earlier_admission(venue.id, verdict.code_id)
        if earlier is not None:
            return await _record_repeat(entry, earlier)
    return await _record(venue, entry, outcome, display)


async def _record(
    venue: VenueSnapshot,
    entry: Entry,
    outcome: Outcome,
    display: dict[str, Any],
) -> dict[str, Any]:
    """Apply the outcome and save the entry in one transaction; a concurrent twin of the
    scan answers with what it recorded, a second admission of the code with the first."""
    for attempt in (1, 2):
        try:
            async with in_transaction():
                return await _apply_and_save(venue, entry, outcome, display)
        except IntegrityError:
            # Rolled back whole. A concurrent request with this scan_id committed first, or
            # one admitted this code, or one for the same person created their presence row.
            existing = await Entry.get_or_none(gate_id=entry.gate_id, scan_id=entry.scan_id)
            replayed = _replay(existing, entry.body_hash)
            if replayed is not None:
                return replayed
            earlier = await earlier_admission(venue.id, entry.code_id)
            if earlier is not None:
                return await _record_repeat(entry, earlier)
            if attempt == 2:
                raise
            entry.id = None
    raise AssertionError("unreachable")  # pragma: no cover


async def _apply_and_save(
    venue: VenueSnapshot,
    entry: Entry,
    outcome: Outcome,
    display: dict[str, Any],
) -> dict[str, Any]:
    """The scan's transaction. An admitting scan first takes the code's admission row: a
    concurrent scan of the same code waits on its key and then fails, before it touches
    presence or occupancy."""
    key = None
    if entry.direction == Direction.IN and outcome.decision.admitted and entry.code_id:
        key = admission_key(venue.id, entry.code_id)
        await Admission.create(
            key=key,
            venue_id=venue.id,
            gate_id=entry.gate_id,
            scan_id=entry.scan_id,
            admitted_at=entry.recorded_at,
        )
    decision, counted, occupancy = await _apply(venue, entry, outcome)
    entry.decision, entry.reason = decision.decision, decision.reason
    entry.counted = counted
    if key is not None and not decision.admitted:
        await Admission.filter(key=key).delete()  # a denied scan does not consume the code
    entry.response = {
        "scan_id": entry.scan_id,
        "decision": decision.decision,
        "reason": decision.reason,
        "display": display,
        "occupancy": occupancy,
        "capacity": venue.capacity,
        "direction": entry.direction,
        "scanned_at": entry.scanned_at.isoformat(),
        "repeat_of": None,
    }
    await entry.save(force_create=True)
    response: dict[str, Any] = entry.response
    return response


async def _record_repeat(entry: Entry, earlier: Entry) -> dict[str, Any]:
    """Record a scan of a code that already admitted here: the earlier decision again,
    naming the scan it repeats, with no admission and no count."""
    entry.id = None
    entry.decision, entry.reason = earlier.decision, earlier.reason
    entry.counted, entry.reservation_id = False, None
    entry.response = {
        **earlier.response,
        "scan_id": entry.scan_id,
        "occupancy": await store.occupancy(entry.venue_id),
        "direction": entry.direction,
        "scanned_at": entry.scanned_at.isoformat(),
        "repeat_of": earlier.scan_id,
    }
    try:
        await entry.save(force_create=True)
    except IntegrityError:
        existing = await Entry.get_or_none(gate_id=entry.gate_id, scan_id=entry.scan_id)
        replayed = _replay(existing, entry.body_hash)
        if replayed is None:
            raise
        return replayed
    response: dict[str, Any] = entry.response
    return response


async def _decide(
    ctx: AppContext,
    venue: VenueSnapshot,
    verdict: Verification,
    direction: Direction,
    now: datetime,
) -> Outcome:
    """The policy on a snapshot; `_apply` then enforces its counters atomically."""
    policy = venue.policy
    if not verdict.valid or verdict.subject_id is None:
        return Outcome(pol.deny(verdict.reason), policy.anti_passback)
    if direction == Direction.OUT:
        return Outcome(pol.admit(), policy.anti_passback)
    rules = ctx.runtime(VenuesRuntime).rules
    facts, seats = await _entry_facts(rules, venue, verdict, verdict.subject_id, now)
    decision = pol.decide_entry(policy, facts, rules.early_entry)
    reservation_id = None
    if decision.admitted and seats:
        window = pol.current_reservation(facts.reservations, now, rules.early_entry)
        reservation_id = next(
            (s.reservation_id for s in seats if window and s.starts_at == window.starts_at), None
        )
    return Outcome(decision, policy.anti_passback, reservation_id)


async def _entry_facts(
    rules: VenueRules, venue: VenueSnapshot, verdict: Verification, subject_id: str, now: datetime
) -> tuple[pol.ScanFacts, list[Seat]]:
    """What the policy needs to know of an entry, read only where the policy asks for it."""
    policy = venue.policy
    # Whether the holder is inside is decided by the atomic claim in `_apply` (the
    # anti-passback step comes after every check made here); the row is read only for
    # the re-entry rule.
    presence = None
    if not policy.reentry_allowed:
        presence = await Presence.get_or_none(venue_id=venue.id, subject_id=subject_id)
    age = None
    if policy.min_age is not None:
        profile = await subject_profile(subject_id, now=now)
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
            and rules.local_day(presence.exited_at) == rules.local_day(now)
        ),
        # Capacity is decided by the atomic update in `_apply`, never on a stale count.
        occupancy=0,
        capacity=venue.capacity,
    )
    return facts, seats


async def _apply(
    venue: VenueSnapshot, entry: Entry, outcome: Outcome
) -> tuple[pol.Decision, bool, int]:
    """Inside the scan's transaction: move presence and occupancy for an admit, or turn it
    into a deny when a concurrent scan got there first. Returns (decision, counted, occupancy)."""
    decision = outcome.decision
    subject_id = entry.subject_id
    if not decision.admitted or subject_id is None:
        return decision, False, await store.occupancy(venue.id)
    if entry.direction == Direction.OUT:
        return await _apply_exit(venue, subject_id, decision, entry.recorded_at)
    return await _apply_entry(venue, subject_id, outcome, entry.recorded_at)


async def _apply_exit(
    venue: VenueSnapshot, subject_id: str, decision: pol.Decision, now: datetime
) -> tuple[pol.Decision, bool, int]:
    # Everyone is let out; only someone inside takes a place off the occupancy.
    if not await store.leave(venue.id, subject_id, now):
        return decision, False, await store.occupancy(venue.id)
    after = await store.bump_occupancy(venue.id, -1)
    if after is not None:
        return decision, True, after
    return decision, False, 0


async def _apply_entry(
    venue: VenueSnapshot, subject_id: str, outcome: Outcome, now: datetime
) -> tuple[pol.Decision, bool, int]:
    # Claim "inside" for this person, then a place; either may lose a race.
    decision = outcome.decision
    if not await store.claim_inside(venue.id, subject_id, now):
        if outcome.anti_passback:
            return pol.deny(pol.ALREADY_INSIDE), False, await store.occupancy(venue.id)
        # Without anti-passback a second entry is let through but already counted.
        return decision, False, await store.occupancy(venue.id)
    after = await store.bump_occupancy(venue.id, +1)
    if after is None:
        await store.release_inside(venue.id, subject_id)
        return pol.deny(pol.VENUE_FULL), False, venue.capacity
    if outcome.reservation_id is not None:
        await Reservation.filter(id=outcome.reservation_id, used_at=None).update(used_at=now)
    return decision, True, after


async def annul_scan(ctx: AppContext, principal: Principal, scan_id: str) -> tuple[Entry, int]:
    """Undo an admitted entry the turnstile did not let through, within the window."""
    gate = await gate_for(ctx, principal)
    await note_contact(ctx, gate.id)
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    entry = await Entry.get_or_none(gate_id=gate.id, scan_id=scan_id)
    if entry is None:
        raise ScanNotFound()
    state = entry_state(entry.decision, entry.annulled_at)
    if state == EntryState.ANNULLED:
        return entry, await store.occupancy(entry.venue_id)
    if (
        not ENTRY.can_move(state, EntryState.ANNULLED)
        or entry.direction != Direction.IN
        or entry.offline
    ):
        raise ScanNotAnnullable("only an admitted online entry can be annulled")
    if now - entry.recorded_at > timedelta(seconds=rules.annul_window_seconds):
        raise AnnulWindowPassed(
            f"an admit can be annulled within {rules.annul_window_seconds}s only"
        )
    async with in_transaction():
        if await Entry.filter(id=entry.id, annulled_at=None).update(annulled_at=now):
            # Frees the code for another admission.
            if entry.code_id is not None:
                key = admission_key(entry.venue_id, entry.code_id)
                await Admission.filter(key=key, scan_id=entry.scan_id).delete()
            # A person who left since is not taken off the occupancy twice.
            if entry.counted and await store.release_inside(entry.venue_id, entry.subject_id):
                await store.bump_occupancy(entry.venue_id, -1)
            if entry.reservation_id is not None:
                await Reservation.filter(id=entry.reservation_id, used_at=now).update(used_at=None)
    await entry.refresh_from_db()
    return entry, await store.occupancy(entry.venue_id)
