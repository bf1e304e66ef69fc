"""The online gate: deciding one scan of a code or an ID card, for the holder and their
companions (policy per person, then presence and occupancy enforced atomically for the
party), recording it idempotently by scan_id, answering a credential that already admitted
with that admission (once per code, once per visit for printed codes and ID cards), and
annulling an admit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import IdempotencyKeyReused, RateLimited
from app.idempotency import canonical_hash
from auth.api import (
    Principal,
    audit_machine_action,
    dependents_of,
    subject_for_id_number,
    subject_profile,
)
from codes.api import Verification, current_status, verify_code
from venues import policy as pol
from venues import store
from venues.catalogue import GateRef, gate_for, note_contact, venue_snapshot
from venues.config import VenueRules, VenueSnapshot, VenuesRuntime
from venues.errors import (
    AnnulWindowPassed,
    DirectionNotSupported,
    PartyTooLarge,
    ScanClockSkewed,
    ScanNotAnnullable,
    ScanNotFound,
)
from venues.models import Admission, Entry, Presence, Reservation, Seat
from venues.states import ENTRY, Credential, Direction, EntryState, ScanDecision, entry_state

# ID-card scans a gate may make in a sliding minute: enough for a queue at a turnstile,
# too few to walk the ID-number space looking for who exists.
ID_CARD_SCANS_PER_MINUTE = 30
# A companion's scan_id is the holder's + "#" + its place in the party; "#" is outside the
# alphabet of client scan_ids, so it never meets one a gate chose.
COMPANION_MARK = "#"
RESERVATION = "reservation"


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
class Holder:
    """Whom a scan's credential names and what the gate may show of them."""

    credential: Credential
    valid: bool
    reason: str
    subject_id: str | None = None
    status: str | None = None
    masked_name: str | None = None
    code_id: str | None = None
    birth_date: date | None = None  # read with the profile for ID cards

    @property
    def display(self) -> dict[str, Any]:
        return {"masked_name": self.masked_name, "status": self.status}


@dataclass(frozen=True)
class Companion:
    ref: str  # the dependent_ref the gate sees (or the unknown name it sent)
    subject_id: str | None  # None: not one of the holder's dependents
    masked_name: str | None = None
    birth_date: date | None = None


@dataclass(frozen=True)
class Party:
    companions: list[Companion] = field(default_factory=list)
    # The holder's dependents, listed for the gate when the scan asked for companions.
    dependents: list[Companion] = field(default_factory=list)


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


def _keyed(ctx: AppContext, label: str, value: str) -> str:
    """A keyed hash: what stands for an ID number or a person where one must not be
    stored or shown in clear (an unkeyed hash of an ID number is found by trying them all)."""
    secret = ctx.keys.secrets.get("blind_index")
    return hmac.new(secret, f"venues:{label}:{value}".encode(), hashlib.sha256).hexdigest()


def _scan_digest(ctx: AppContext, request: ScanRequest) -> str:
    body: dict[str, Any] = {
        "scan_id": request.scan_id,
        "code": request.code,
        "direction": request.direction,
        "scanned_at": request.scanned_at.isoformat() if request.scanned_at else None,
    }
    if request.id_card is not None:
        body["id_card"] = _keyed(ctx, "id-card", request.id_card.upper())
    if request.companions is not None:
        body["companions"] = request.companions
    return canonical_hash(body)


def admission_key(venue_id: str, code_id: str) -> str:
    """The key of a code's one admission at a venue (`Admission.key`)."""
    return f"{venue_id}/{code_id}"


def visit_key(venue_id: str, subject_id: str) -> str:
    """The key of a person's admission by a long-lived credential (printed code, ID card):
    one per visit, released by their exit."""
    return f"{venue_id}/visit/{subject_id}"


def _holder_key(venue_id: str, holder: Holder) -> str | None:
    if not holder.valid or holder.subject_id is None:
        return None
    if holder.credential.long_lived:
        return visit_key(venue_id, holder.subject_id)
    return admission_key(venue_id, holder.code_id) if holder.code_id else None


async def earlier_admission(venue_id: str, code_id: str | None) -> Entry | None:
    """The entry that admitted this code at this venue (not annulled), if any."""
    if code_id is None:
        return None
    return (await _held(admission_key(venue_id, code_id)))[1]


async def _held(key: str) -> tuple[Admission | None, Entry | None]:
    held = await Admission.get_or_none(key=key)
    if held is None:
        return None, None
    return held, await Entry.get_or_none(gate_id=held.gate_id, scan_id=held.scan_id)


# -- who is scanned --------------------------------------------------------------------------


def _code_credential(verdict: Verification) -> Credential:
    # A printed card (离线码) is shown for months: it admits once per visit, not once.
    return Credential.PRINTED if verdict.kind == "printed" else Credential.CODE


async def _code_holder(ctx: AppContext, gate_id: str, code: str) -> Holder:
    verdict = await verify_code(ctx, code, verifier_id=gate_id)
    return Holder(
        _code_credential(verdict),
        verdict.valid,
        verdict.reason,
        verdict.subject_id,
        verdict.status or verdict.issued_status,
        verdict.masked_name,
        verdict.code_id,
    )


async def _limit_id_cards(ctx: AppContext, gate_id: str, now: datetime) -> None:
    hit = await ctx.kv.window_hit(
        ctx.kv.keys.key("venues", "id-card", gate_id),
        now_ms=int(now.timestamp() * 1000),
        window_ms=60_000,
        limit=ID_CARD_SCANS_PER_MINUTE,
        member=secrets.token_hex(8),
    )
    if not hit.allowed:
        raise RateLimited(max(1, hit.retry_after_ms // 1000), "too many ID-card scans at this gate")


async def _card_holder(
    ctx: AppContext, rules: VenueRules, venue: VenueSnapshot, number: str, now: datetime
) -> Holder:
    """The person an ID card names, decided like a code's holder with their current status.
    A number of nobody, and of a person who has no business at a venue that takes
    reservations only, both answer `id_card_unknown` with nothing shown."""
    unknown = Holder(Credential.ID_CARD, False, pol.ID_CARD_UNKNOWN)
    if not venue.policy.id_card_allowed:
        return replace(unknown, reason=pol.ID_CARD_NOT_ALLOWED)
    subject_id = await subject_for_id_number(ctx, number.upper())
    if subject_id is None:
        return unknown
    if venue.policy.reservation_required and not await _seats(rules, venue.id, subject_id, now):
        return unknown
    profile = await subject_profile(subject_id, now=now)
    if profile is None:
        return unknown
    status = await current_status(ctx, subject_id)
    return Holder(
        Credential.ID_CARD,
        True,
        pol.OK,
        subject_id,
        status.value,
        profile.masked_name,
        birth_date=profile.birth_date,
    )


def dependent_ref(ctx: AppContext, venue_id: str, day: date, subject_id: str) -> str:
    """How a gate names a companion: stable at one venue for one local day, unlinkable
    across venues and days, no id of the person."""
    return "d" + _keyed(ctx, "companion", f"{venue_id}:{day.isoformat()}:{subject_id}")[:24]


async def _party(
    ctx: AppContext,
    rules: VenueRules,
    venue: VenueSnapshot,
    holder: Holder,
    request: ScanRequest,
    now: datetime,
) -> Party:
    """The companions the scan asks for and the holder's dependents to choose from."""
    asked = request.companions
    if asked is None or holder.subject_id is None or not holder.valid:
        return Party()
    day = rules.local_day(now)
    dependents: list[Companion] = []
    for subject_id in await dependents_of(holder.subject_id):
        profile = await subject_profile(subject_id, now=now)
        dependents.append(
            Companion(
                dependent_ref(ctx, venue.id, day, subject_id),
                subject_id,
                profile.masked_name if profile else None,
                profile.birth_date if profile else None,
            )
        )
    chosen: list[Companion] = []
    if asked == RESERVATION:
        booked = await _party_booking(rules, venue.id, holder.subject_id, request.direction, now)
        chosen = [d for d in dependents if d.subject_id in booked]
    else:
        by_name = {d.ref: d for d in dependents} | {str(d.subject_id): d for d in dependents}
        seen: set[str | None] = {holder.subject_id}
        for name in asked:
            found = by_name.get(name)
            if found is None:
                chosen.append(Companion(name, None))
            elif found.subject_id not in seen:
                seen.add(found.subject_id)
                chosen.append(found)
    if 1 + len(chosen) > rules.max_party:
        raise PartyTooLarge(
            f"a party at the gate is at most {rules.max_party} people, the holder included"
        )
    return Party(chosen, dependents)


async def _party_booking(
    rules: VenueRules, venue_id: str, holder_id: str, direction: Direction, now: datetime
) -> set[str]:
    """The other people on the holder's booking: the one in force for an entry, the day's
    for an exit (the slot may have ended)."""
    if direction == Direction.IN:
        seats = await _seats(rules, venue_id, holder_id, now)
        window = pol.current_reservation(
            [pol.SlotWindow(s.starts_at, s.ends_at) for s in seats], now, rules.early_entry
        )
        reservation_id = next(
            (s.reservation_id for s in seats if window and s.starts_at == window.starts_at), None
        )
    else:
        today = await Seat.filter(
            venue_id=venue_id, subject_id=holder_id, day=rules.local_day(now)
        ).order_by("-starts_at")
        reservation_id = today[0].reservation_id if today else None
    if reservation_id is None:
        return set()
    found = await Seat.filter(reservation_id=reservation_id).values_list("subject_id", flat=True)
    return {str(s) for s in found} - {holder_id}


# -- the scan --------------------------------------------------------------------------------


async def scan(ctx: AppContext, principal: Principal, request: ScanRequest) -> dict[str, Any]:
    """Decide one online scan at the principal's gate and record it; the same scan_id
    answers the same again, and a credential that admitted here answers its admission."""
    gate = await gate_for(ctx, principal)
    await note_contact(ctx, gate.id)
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    scanned_at = _check_scan(rules, gate, request, now)
    venue = await venue_snapshot(ctx, gate.venue_id)
    if request.id_card is not None:
        await _limit_id_cards(ctx, gate.id, now)
        holder = await _card_holder(ctx, rules, venue, request.id_card, now)
    else:
        holder = await _code_holder(ctx, gate.id, request.code or "")
    party = await _party(ctx, rules, venue, holder, request, now)
    digest = _scan_digest(ctx, request)
    members = await _members(ctx, rules, venue, holder, party, request, digest, scanned_at, now)
    key = _holder_key(venue.id, holder) if request.direction == Direction.IN else None
    party_scan = store.PartyScan(
        venue_id=venue.id,
        gate_id=gate.id,
        direction=request.direction,
        credential=holder.credential.value,
        scanned_at=scanned_at,
        recorded_at=now,
        anti_passback=venue.policy.anti_passback,
        members=members,
        admission_key=key,
        # An exit ends the visit: the per-visit admissions of the people let out go with it.
        visit_keys=[
            visit_key(venue.id, m.subject_id)
            for m in members
            if m.subject_id is not None and request.direction == Direction.OUT
        ],
    )
    answer = await _record(party_scan, digest)
    if request.id_card is not None:
        # Who was looked up by ID card, where, and the outcome; never the number itself.
        await audit_machine_action(
            principal, "id_card_scan", now=now, target=holder.subject_id,
            detail={"gate": gate.id, "scan_id": request.scan_id, "decision": answer["decision"],
                    "reason": answer["reason"]},
        )  # fmt: skip
    return answer


async def _members(
    ctx: AppContext,
    rules: VenueRules,
    venue: VenueSnapshot,
    holder: Holder,
    party: Party,
    request: ScanRequest,
    digest: str,
    scanned_at: datetime,
    now: datetime,
) -> list[store.PartyMember]:
    """Each person of the party with the policy's own decision on them."""
    base = {
        "capacity": venue.capacity,
        "direction": request.direction.value,
        "scanned_at": scanned_at.isoformat(),
        "repeat_of": None,
        "credential": holder.credential.value,
    }
    decision, reservation_id = await _plan(
        rules, venue, holder.subject_id, holder.valid, holder.reason, holder.status,
        holder.birth_date, request.direction, now,
    )  # fmt: skip
    members = [
        store.PartyMember(
            holder.subject_id,
            decision,
            request.scan_id,
            digest,
            {
                **base,
                "scan_id": request.scan_id,
                "display": holder.display,
                "companions": [],
                "dependents": [
                    {"dependent_ref": d.ref, "masked_name": d.masked_name} for d in party.dependents
                ],
            },
            code_id=holder.code_id,
            reservation_id=reservation_id,
        )
    ]
    for n, companion in enumerate(party.companions, start=1):
        status = None
        if companion.subject_id is not None:
            status = (await current_status(ctx, companion.subject_id)).value
        known = companion.subject_id is not None
        decision, reservation_id = await _plan(
            rules, venue, companion.subject_id, known, pol.NOT_A_DEPENDENT, status,
            companion.birth_date, request.direction, now,
        )  # fmt: skip
        scan_id = f"{request.scan_id}{COMPANION_MARK}{n}"
        members.append(
            store.PartyMember(
                companion.subject_id,
                decision,
                scan_id,
                digest,
                {
                    **base,
                    "scan_id": scan_id,
                    "dependent_ref": companion.ref,
                    "display": {"masked_name": companion.masked_name, "status": status},
                },
                reservation_id=reservation_id,
            )
        )
    return members


async def _plan(
    rules: VenueRules,
    venue: VenueSnapshot,
    subject_id: str | None,
    valid: bool,
    reason: str,
    status: str | None,
    birth_date: date | None,
    direction: Direction,
    now: datetime,
) -> tuple[pol.Decision, str | None]:
    """The policy's decision on one person, on a snapshot (anti-passback and capacity are
    settled atomically when the party is recorded), and the reservation it uses."""
    if not valid or subject_id is None:
        return pol.deny(reason), None
    if direction == Direction.OUT:
        return pol.admit(), None
    facts, seats = await _entry_facts(rules, venue, subject_id, status, birth_date, now)
    decision = pol.decide_entry(venue.policy, facts, rules.early_entry)
    reservation_id = None
    if decision.admitted and seats:
        window = pol.current_reservation(facts.reservations, now, rules.early_entry)
        reservation_id = next(
            (s.reservation_id for s in seats if window and s.starts_at == window.starts_at), None
        )
    return decision, reservation_id


async def _seats(rules: VenueRules, venue_id: str, subject_id: str, now: datetime) -> list[Seat]:
    """The person's booked seats at the venue whose window may hold now."""
    return await Seat.filter(
        venue_id=venue_id,
        subject_id=subject_id,
        ends_at__gt=now,
        starts_at__lte=now + rules.early_entry,
    )


async def _entry_facts(
    rules: VenueRules,
    venue: VenueSnapshot,
    subject_id: str,
    status: str | None,
    birth_date: date | None,
    now: datetime,
) -> tuple[pol.ScanFacts, list[Seat]]:
    """What the policy needs to know of an entry, read only where the policy asks for it."""
    policy = venue.policy
    # Whether the person is inside is settled when the party is recorded (the anti-passback
    # step comes after every check made here); the row is read only for the re-entry rule.
    presence = None
    if not policy.reentry_allowed:
        presence = await Presence.get_or_none(venue_id=venue.id, subject_id=subject_id)
    age = None
    if policy.min_age is not None:
        if birth_date is None:
            profile = await subject_profile(subject_id, now=now)
            birth_date = profile.birth_date if profile else None
        if birth_date is not None:
            age = pol.age_on(birth_date, rules.local_day(now))
    seats: list[Seat] = []
    if policy.reservation_required:
        seats = await _seats(rules, venue.id, subject_id, now)
    facts = pol.ScanFacts(
        now=now,
        code_valid=True,
        code_reason=pol.OK,
        status=status,
        age=age,
        reservations=[pol.SlotWindow(s.starts_at, s.ends_at) for s in seats],
        inside=bool(presence is not None and presence.inside),
        exited_today=(
            presence is not None
            and presence.exited_at is not None
            and rules.local_day(presence.exited_at) == rules.local_day(now)
        ),
        # Capacity is settled atomically for the whole party, never on a stale count.
        occupancy=0,
        capacity=venue.capacity,
    )
    return facts, seats


# -- recording -------------------------------------------------------------------------------


# The answer's fields in the order the API documents them (what a person reads first).
ANSWER_ORDER = (
    "scan_id", "decision", "reason", "display", "occupancy", "capacity", "direction",
    "scanned_at", "repeat_of", "credential", "companions", "dependents",
)  # fmt: skip


DISPLAY_ORDER = ("masked_name", "status")


def _ordered(fields: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    # Stored answers come back from PostgreSQL's jsonb with their keys re-sorted.
    return {**{name: fields[name] for name in order if name in fields}, **fields}


def _in_order(answer: dict[str, Any]) -> dict[str, Any]:
    ordered = _ordered(answer, ANSWER_ORDER)
    if isinstance(ordered.get("display"), dict):
        ordered["display"] = _ordered(ordered["display"], DISPLAY_ORDER)
    return ordered


def _answer(rows: Sequence[store.RecordedScan]) -> dict[str, Any]:
    """The holder's answer with one line per companion."""
    companions = [_companion_out(r.response) for r in rows[1:]]
    return _in_order({**rows[0].response, "companions": companions})


def _companion_out(response: dict[str, Any]) -> dict[str, Any]:
    return {
        "scan_id": response["scan_id"],
        "dependent_ref": response.get("dependent_ref", ""),
        "decision": response["decision"],
        "reason": response["reason"],
        "display": _ordered(response["display"], DISPLAY_ORDER),
        "repeat_of": response.get("repeat_of"),
    }


def _companion_ids(scan_id: str) -> list[str]:
    return [f"{scan_id}{COMPANION_MARK}{n}" for n in range(1, pol.MAX_COMPANIONS + 1)]


async def _stored_answer(entry: Entry, digest: str) -> dict[str, Any] | None:
    """A recorded scan answered again (same scan_id, same body), its companions included."""
    response = _replay(entry, digest)
    if response is None:
        return None
    found = await Entry.filter(gate_id=entry.gate_id, scan_id__in=_companion_ids(entry.scan_id))
    found.sort(key=lambda e: int(e.scan_id.rsplit(COMPANION_MARK, 1)[1]))
    return _in_order({**response, "companions": [_companion_out(e.response) for e in found]})


async def _record(party: store.PartyScan, digest: str) -> dict[str, Any]:
    """Record the party's scan; a concurrent twin of the scan answers with what it recorded,
    a credential that admitted already with that admission."""
    holder = party.members[0]
    for attempt in (1, 2, 3):
        try:
            rows = await store.record_party(party)
        except IntegrityError:
            # Rolled back whole: a concurrent request with this scan_id committed first, or
            # one took this credential's admission (the next try answers that repeat).
            existing = await Entry.get_or_none(gate_id=party.gate_id, scan_id=holder.scan_id)
            if existing is not None:
                answer = await _stored_answer(existing, digest)
                assert answer is not None
                return answer
            if attempt == 3:
                raise
            continue
        if rows is not None:
            return _answer(rows)
        assert party.admission_key is not None  # only a held admission records nothing
        held, earlier = await _held(party.admission_key)
        if earlier is not None and await _admission_stands(party, earlier):
            return await _record_repeat(party, earlier)
        if held is not None:
            # The key names no standing admission (the visit ended at an offline gate, or
            # its entry was purged): free it, and decide the scan afresh.
            await Admission.filter(key=held.key, scan_id=held.scan_id).delete()
    raise AssertionError("unreachable")  # pragma: no cover


async def _admission_stands(party: store.PartyScan, earlier: Entry) -> bool:
    """A code's admission stands for good; a visit's only while the person is inside (an
    exit synced from an offline gate does not release the key)."""
    if not Credential(party.credential).long_lived or earlier.subject_id is None:
        return True
    return await store.inside(party.venue_id, earlier.subject_id)


async def _record_repeat(party: store.PartyScan, earlier: Entry) -> dict[str, Any]:
    """Record a scan of a credential that already admitted here: the earlier decision again,
    naming the scan it repeats, with no admission and no count; companions asked for now
    are decided as usual."""
    holder = party.members[0]
    repeated = replace(
        holder,
        planned=pol.Decision(ScanDecision(earlier.decision), earlier.reason),
        response={
            **earlier.response,
            "scan_id": holder.scan_id,
            "direction": party.direction.value,
            "scanned_at": party.scanned_at.isoformat(),
            "repeat_of": earlier.scan_id,
            "companions": [],
            "dependents": holder.response["dependents"],
        },
        reservation_id=None,
        fixed=True,
    )
    repeat = replace(party, members=[repeated, *party.members[1:]], admission_key=None)
    try:
        rows = await store.record_party(repeat)
    except IntegrityError:
        existing = await Entry.get_or_none(gate_id=party.gate_id, scan_id=holder.scan_id)
        answer = await _stored_answer(existing, holder.body_hash) if existing else None
        if answer is None:
            raise
        return answer
    assert rows is not None
    return _answer(rows)


# -- annul -----------------------------------------------------------------------------------


async def annul_scan(ctx: AppContext, principal: Principal, scan_id: str) -> tuple[Entry, int]:
    """Undo an admitted entry the turnstile did not let through, within the window; the
    holder's annul undoes the companions admitted with them."""
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
    companions = await Entry.filter(
        gate_id=gate.id, scan_id__in=_companion_ids(scan_id), decision=pol.ADMIT.value
    )
    async with in_transaction():
        if await Entry.filter(id=entry.id, annulled_at=None).update(annulled_at=now):
            # Frees the credential for another admission.
            keys = [visit_key(entry.venue_id, entry.subject_id or "")]
            if entry.code_id is not None:
                keys.append(admission_key(entry.venue_id, entry.code_id))
            await Admission.filter(key__in=keys, scan_id=entry.scan_id).delete()
            for one in [entry, *companions]:
                if one is not entry and not await Entry.filter(id=one.id, annulled_at=None).update(
                    annulled_at=now
                ):
                    continue
                await _undo_entry(one)
    await entry.refresh_from_db()
    return entry, await store.occupancy(entry.venue_id)


async def _undo_entry(entry: Entry) -> None:
    # A person who left since is not taken off the occupancy twice.
    if entry.counted and await store.release_inside(entry.venue_id, entry.subject_id):
        await store.bump_occupancy(entry.venue_id, -1)
    if entry.reservation_id is not None:
        await Reservation.filter(id=entry.reservation_id, used_at=entry.recorded_at).update(
            used_at=None
        )
