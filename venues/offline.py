"""Offline gates on the server side: the signed bundle a gate decides from without the
network, its signing keys, and the sync that records what the gate decided offline.

The gate itself runs `venues.offline_gate` (pure); both sides share its `OfflineScan`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.idempotency import canonical_hash
from auth.api import Principal
from codes.api import (
    Result,
    TrustedKey,
    daily_pseudonym,
    day_of,
    gate_token_keys,
    keys_from_jwks,
    public_keys,
    revocations_since,
    verify,
)
from venues import store
from venues.catalogue import GateRef, gate_for, get_venue, policy_of
from venues.config import VenueRules, VenuesRuntime
from venues.models import Entry, Seat
from venues.offline_gate import OfflineScan, reservation_hash
from venues.policy import ADMIT
from venues.states import Direction, SyncConflict, SyncOutcome

BUNDLE_PURPOSE = "bundles"
BUNDLE_TYPE = "suishen-gate-bundle+jws"
# How far a synced scan's code may be from its scan time and still count as valid.
SYNC_SKEW = timedelta(seconds=30)


def bundle_keys(ctx: AppContext) -> dict[str, Any]:
    """JWK Set of the keys offline bundles are signed with (retired ones while a bundle
    they signed may still be in use)."""
    window = timedelta(hours=ctx.runtime(VenuesRuntime).rules.bundle_hours)
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


async def offline_bundle(ctx: AppContext, principal: Principal) -> SignedBundle:
    """What the principal's gate needs to decide without the network for the next N hours.
    Reservations appear only as HMACs (fresh salt per bundle) of the holders' daily code
    pseudonyms."""
    gate = await gate_for(ctx, principal)
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    expires = now + timedelta(hours=rules.bundle_hours)
    venue = await get_venue(gate.venue_id)
    salt = secrets.token_bytes(16)
    reservations = await _listed_reservations(ctx, rules, venue.id, salt, now, expires)
    revoked, cursor = await _revocations(ctx)
    days = range(day_of(int(now.timestamp())), day_of(int(expires.timestamp())) + 1)
    document = {
        "typ": "suishen-gate-bundle",
        "venue_id": venue.id,
        "gate_id": gate.id,
        "direction": gate.direction,
        "issued_at": now.isoformat(),
        "expires_at": expires.isoformat(),
        "capacity": venue.capacity,
        "occupancy": venue.occupancy,
        "policy": policy_of(venue).as_json(),
        "early_entry_minutes": rules.early_entry_minutes,
        "code_keys": public_keys(ctx),
        "gate_keys": {str(d): k for d, k in gate_token_keys(ctx, list(days)).items()},
        "revoked_code_ids": revoked,
        "revocations_cursor": cursor,
        "reservation_salt": salt.hex(),
        "reservations": reservations,
    }
    return _sign(ctx, document, expires)


async def _listed_reservations(
    ctx: AppContext,
    rules: VenueRules,
    venue_id: str,
    salt: bytes,
    now: datetime,
    expires: datetime,
) -> list[dict[str, str]]:
    """The seats a bundle's lifetime can admit, each under the hash of its holder."""
    seats = await Seat.filter(
        venue_id=venue_id, ends_at__gt=now, starts_at__lt=expires + rules.early_entry
    ).order_by("starts_at")
    listed = []
    for seat in seats:
        # A code opens to the pseudonym of the day it was issued: list the holder under
        # every day the admission window touches (early entry may start the day before).
        first = day_of(int((seat.starts_at - rules.early_entry).timestamp()))
        last = day_of(int(seat.ends_at.timestamp()))
        for day in range(first, last + 1):
            alias = await daily_pseudonym(ctx, seat.subject_id, day)
            listed.append(
                {
                    "h": reservation_hash(salt, alias),
                    "starts_at": seat.starts_at.isoformat(),
                    "ends_at": seat.ends_at.isoformat(),
                }
            )
    return listed


async def _revocations(ctx: AppContext) -> tuple[list[str], int]:
    """Every revoked code id codes publishes, and the cursor after the last."""
    revoked: list[str] = []
    cursor = 0
    while True:
        page = await revocations_since(ctx, cursor)
        revoked.extend(e.code_id for e in page.entries)
        cursor = page.next_cursor
        if not page.has_more:
            return revoked, cursor


def _sign(ctx: AppContext, document: dict[str, Any], expires: datetime) -> SignedBundle:
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
class SyncedScan:
    scan_id: str
    outcome: SyncOutcome
    conflicts: list[SyncConflict]


def _sync_digest(item: OfflineScan) -> str:
    return canonical_hash(
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


async def sync_offline(
    ctx: AppContext, principal: Principal, scans: Sequence[OfflineScan]
) -> tuple[list[SyncedScan], int]:
    """Record scans the principal's gate decided offline, keeping its scan times. What the
    gate decided stands (the turnstile turned); what the server knows better is reported
    as conflicts."""
    gate = await gate_for(ctx, principal)
    now = ctx.clock.now()
    keys = keys_from_jwks(public_keys(ctx))
    revoked = set((await _revocations(ctx))[0])
    results: list[SyncedScan] = []
    for item in sorted(scans, key=lambda s: s.scanned_at):
        digest = _sync_digest(item)
        existing = await Entry.get_or_none(gate_id=gate.id, scan_id=item.scan_id)
        if existing is None:
            results.append(await _record_offline(gate, item, digest, keys, revoked, now))
        elif existing.body_hash == digest:
            results.append(SyncedScan(item.scan_id, SyncOutcome.DUPLICATE, []))
        else:
            conflicts = [SyncConflict.SCAN_ID_REUSED]
            results.append(SyncedScan(item.scan_id, SyncOutcome.CONFLICT, conflicts))
    return results, await store.occupancy(gate.venue_id)


async def _record_offline(
    gate: GateRef,
    item: OfflineScan,
    digest: str,
    keys: dict[bytes, TrustedKey],
    revoked: set[str],
    now: datetime,
) -> SyncedScan:
    result = verify(item.code, keys, (), item.scanned_at, SYNC_SKEW)
    conflicts = await _known_better(gate, item, result, revoked)
    try:
        async with in_transaction():
            counted = await _count_offline(gate, item, conflicts)
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
        return SyncedScan(item.scan_id, SyncOutcome.DUPLICATE, [])
    outcome = SyncOutcome.CONFLICT if conflicts else SyncOutcome.RECORDED
    return SyncedScan(item.scan_id, outcome, conflicts)


async def _known_better(
    gate: GateRef, item: OfflineScan, result: Result, revoked: set[str]
) -> list[SyncConflict]:
    """What the server knows that the gate did not when it admitted offline."""
    conflicts: list[SyncConflict] = []
    if item.decision != ADMIT:
        return conflicts
    if not result.valid:
        conflicts.append(SyncConflict.CODE_INVALID)
    if result.code_id is not None:
        if result.code_id in revoked:
            # Codes publishes which codes are revoked, not when: the gate had the list of
            # its bundle, so a revocation it did not know is reported for a human to judge.
            conflicts.append(SyncConflict.CODE_REVOKED)
        elsewhere = await Entry.filter(
            venue_id=gate.venue_id, code_id=result.code_id, decision=ADMIT,
            direction=item.direction, annulled_at=None,
        ).exclude(gate_id=gate.id).exists()  # fmt: skip
        if elsewhere:
            conflicts.append(SyncConflict.CODE_ADMITTED_ELSEWHERE)
    return conflicts


async def _count_offline(gate: GateRef, item: OfflineScan, conflicts: list[SyncConflict]) -> bool:
    """Inside the sync's transaction: move the occupancy for an offline admit. An entry the
    venue has no room for any more still stands, reported as a capacity overrun."""
    if item.decision != ADMIT:
        return False
    if item.direction == Direction.IN:
        counted = await store.bump_occupancy(gate.venue_id, +1) is not None
        if not counted:
            conflicts.append(SyncConflict.CAPACITY_OVERRUN)
        return counted
    return await store.bump_occupancy(gate.venue_id, -1) is not None
