"""Syncing the scans an offline gate decided (POST /v1/gates/sync).

Each scan is recorded with the gate's own scan time, idempotently by scan_id. A scan time
the bundle could not have been valid at, or ahead of the gate's own clock, is refused.
What the gate decided stands (the turnstile turned), and admissions and exits move
presence and occupancy as online scans do, keyed by the code's subject
(`codes.api.holder_of`): one admission per code, an entry counts only
for someone not inside (and not for an entry older than their last recorded exit), an exit
only for someone inside. What the server knows better is reported per scan as conflicts.
A printed code (离线码) is shown on every visit: it takes no once-per-code admission and is
never "admitted elsewhere"; presence alone counts it (a repeat the gate answered within one
visit counts nothing), and a card revoked since the gate's bundle is reported
(`code_revoked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.idempotency import canonical_hash
from auth.api import Principal
from codes.api import (
    GATE_KINDS,
    Result,
    TrustedKey,
    holder_of,
    keys_from_jwks,
    public_keys,
    verify,
)
from venues import store
from venues.catalogue import GateRef, gate_for, note_contact
from venues.config import VenueRules, VenuesRuntime
from venues.gate import admission_key
from venues.models import Admission, Entry
from venues.offline import revoked_code_ids
from venues.offline_gate import PRINTED, OfflineScan
from venues.policy import ADMIT
from venues.states import Direction, SyncConflict, SyncOutcome, SyncRejection

# How far a synced scan's code may be from its scan time and still count as valid.
SYNC_SKEW = timedelta(seconds=30)


@dataclass(frozen=True)
class SyncedScan:
    scan_id: str
    outcome: SyncOutcome
    conflicts: list[SyncConflict] = field(default_factory=list)
    reason: SyncRejection | None = None


@dataclass(frozen=True)
class SyncWindow:
    """The scan times a sync accepts: within the longest bundle lifetime before now, not
    after now + the skew, and not after the gate's reported clock + the skew."""

    earliest: datetime
    latest: datetime
    gate_latest: datetime | None

    @classmethod
    def of(cls, rules: VenueRules, now: datetime, gate_time: datetime | None) -> SyncWindow:
        skew = timedelta(seconds=rules.scan_skew_seconds)
        return cls(
            earliest=now - timedelta(hours=rules.bundle_hours),
            latest=now + skew,
            gate_latest=gate_time + skew if gate_time is not None else None,
        )

    def refuses(self, scanned_at: datetime) -> SyncRejection | None:
        if scanned_at < self.earliest:
            return SyncRejection.SCANNED_BEFORE_BUNDLE_WINDOW
        if scanned_at > self.latest:
            return SyncRejection.SCANNED_IN_FUTURE
        if self.gate_latest is not None and scanned_at > self.gate_latest:
            return SyncRejection.SCANNED_AFTER_GATE_TIME
        return None


@dataclass(frozen=True)
class _Batch:
    gate: GateRef
    window: SyncWindow
    keys: dict[bytes, TrustedKey]
    revoked: set[str]
    now: datetime


def _sync_digest(item: OfflineScan) -> str:
    body: dict[str, object] = {
        "scan_id": item.scan_id,
        "code": item.code,
        "direction": item.direction,
        "scanned_at": item.scanned_at.isoformat(),
        "decision": item.decision,
        "reason": item.reason,
        "offline": True,
    }
    if item.repeat_of is not None:  # absent before repeats existed: old digests still match
        body["repeat_of"] = item.repeat_of
    return canonical_hash(body)


async def sync_offline(
    ctx: AppContext,
    principal: Principal,
    scans: Sequence[OfflineScan],
    gate_time: datetime | None = None,
) -> tuple[list[SyncedScan], int]:
    """Record scans the principal's gate decided offline, in scan-time order. Returns one
    result per scan and the venue's occupancy after them."""
    gate = await gate_for(ctx, principal)
    await note_contact(ctx, gate.id)
    now = ctx.clock.now()
    batch = _Batch(
        gate=gate,
        window=SyncWindow.of(ctx.runtime(VenuesRuntime).rules, now, gate_time),
        keys=keys_from_jwks(public_keys(ctx)),
        revoked=set(await revoked_code_ids(ctx)),
        now=now,
    )
    results = [await _sync_one(ctx, batch, item) for item in sorted(scans, key=_scan_time)]
    return results, await store.occupancy(gate.venue_id)


def _scan_time(item: OfflineScan) -> datetime:
    return item.scanned_at


async def _sync_one(ctx: AppContext, batch: _Batch, item: OfflineScan) -> SyncedScan:
    digest = _sync_digest(item)
    existing = await Entry.get_or_none(gate_id=batch.gate.id, scan_id=item.scan_id)
    if existing is not None:
        if existing.body_hash == digest:
            return SyncedScan(item.scan_id, SyncOutcome.DUPLICATE)
        return SyncedScan(item.scan_id, SyncOutcome.REJECTED, reason=SyncRejection.SCAN_ID_REUSED)
    refused = batch.window.refuses(item.scanned_at)
    if refused is not None:
        return SyncedScan(item.scan_id, SyncOutcome.REJECTED, reason=refused)
    result = verify(item.code, batch.keys, (), item.scanned_at, SYNC_SKEW, kind=GATE_KINDS)
    known = await _known_better(batch, item, result)
    # Presence is keyed by subject, as online: a code that did not verify at its scan time
    # names nobody. (codes' caches answer without a query for subjects seen before.)
    subject_id = await holder_of(ctx, item.code) if result.valid else None
    for attempt in (1, 2):
        try:
            async with in_transaction():
                conflicts = await _record_offline(batch, item, digest, result, subject_id, known)
            break
        except IntegrityError:
            # The same scan sent twice at once (the other request recorded it), or the same
            # code admitted concurrently by another upload: run again to see which.
            if await Entry.exists(gate_id=batch.gate.id, scan_id=item.scan_id):
                return SyncedScan(item.scan_id, SyncOutcome.DUPLICATE)
            if attempt == 2:
                raise
    outcome = SyncOutcome.CONFLICT if conflicts else SyncOutcome.RECORDED
    return SyncedScan(item.scan_id, outcome, conflicts)


async def _record_offline(
    batch: _Batch,
    item: OfflineScan,
    digest: str,
    result: Result,
    subject_id: str | None,
    known: list[SyncConflict],
) -> list[SyncConflict]:
    """Inside the sync's transaction: move presence and occupancy, store the entry; the
    scan's conflicts."""
    gate = batch.gate
    counted, found, key = await _count_offline(gate, item, result, subject_id)
    if key is not None:  # the code's one admission at this venue
        await Admission.create(
            key=key, venue_id=gate.venue_id, gate_id=gate.id, scan_id=item.scan_id,
            admitted_at=item.scanned_at,
        )  # fmt: skip
    conflicts = known + [c for c in found if c not in known]
    await Entry.create(
        venue_id=gate.venue_id,
        gate_id=gate.id,
        scan_id=item.scan_id,
        body_hash=digest,
        direction=item.direction,
        decision=item.decision,
        reason=item.reason,
        subject_id=subject_id,
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
        recorded_at=batch.now,
    )
    return conflicts


async def _known_better(batch: _Batch, item: OfflineScan, result: Result) -> list[SyncConflict]:
    """What the server knows that the gate did not when it admitted offline."""
    conflicts: list[SyncConflict] = []
    if item.decision != ADMIT:
        return conflicts
    if not result.valid:
        conflicts.append(SyncConflict.CODE_INVALID)
    if result.code_id is not None:
        if result.code_id in batch.revoked:
            # Codes publishes which codes are revoked, not when: the gate had the list of
            # its bundle, so a revocation it did not know is reported for a human to judge.
            conflicts.append(SyncConflict.CODE_REVOKED)
        if result.kind == PRINTED:
            # A card admits on every visit; a double entry shows as already_inside.
            return conflicts
        elsewhere = await Entry.filter(
            venue_id=batch.gate.venue_id, code_id=result.code_id, decision=ADMIT,
            direction=item.direction, annulled_at=None,
        ).exclude(gate_id=batch.gate.id).exists()  # fmt: skip
        if elsewhere:
            conflicts.append(SyncConflict.CODE_ADMITTED_ELSEWHERE)
    return conflicts


async def _count_offline(
    gate: GateRef, item: OfflineScan, result: Result, subject_id: str | None
) -> tuple[bool, list[SyncConflict], str | None]:
    """Presence and occupancy for an offline admit: (counted, conflicts, admission key).
    A code that does not verify names nobody, so it moves neither."""
    if item.decision != ADMIT:
        return False, [], None
    if item.direction == Direction.OUT:
        if subject_id is None or not await store.leave(
            gate.venue_id, subject_id, item.scanned_at, synced=True
        ):
            return False, [], None
        return await store.bump_occupancy(gate.venue_id, -1) is not None, [], None
    if result.kind == PRINTED:
        if item.repeat_of is not None:
            return False, [], None  # the gate answered the card's admission of this visit
        key = None  # a card is shown on every visit: presence alone counts it
    else:
        key = admission_key(gate.venue_id, result.code_id) if result.code_id else None
    earlier = await Admission.get_or_none(key=key) if key else None
    if earlier is not None:
        # The code admitted already: a repeat at this gate, or reported as admitted elsewhere.
        if (
            earlier.gate_id != gate.id
            and subject_id is not None
            and await store.inside(gate.venue_id, subject_id)
        ):
            return False, [SyncConflict.ALREADY_INSIDE], None
        return False, [], None
    if subject_id is None:
        return False, [], key
    venue_id = gate.venue_id
    if not await store.claim_inside(venue_id, subject_id, item.scanned_at, synced=True):
        # Inside already (counted once), or out since by a later recorded exit.
        if await store.inside(venue_id, subject_id):
            return False, [SyncConflict.ALREADY_INSIDE], key
        return False, [], key
    if await store.bump_occupancy(venue_id, +1) is None:
        await store.release_inside(venue_id, subject_id)
        return False, [SyncConflict.CAPACITY_OVERRUN], key
    return True, [], key
