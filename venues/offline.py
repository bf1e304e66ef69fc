"""Offline gates on the server side: the signed bundle a gate decides from without the
network, and its signing keys. `venues.sync` records what the gate decided offline; the
gate itself runs `venues.offline_gate` (pure).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm

from app.context import AppContext
from auth.api import Principal
from codes.api import (
    daily_pseudonym,
    day_of,
    gate_token_keys,
    public_keys,
    revocations_since,
)
from venues.catalogue import gate_for, get_venue, note_contact, policy_of
from venues.config import VenueRules, VenuesRuntime
from venues.models import Seat
from venues.offline_gate import reservation_hash

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
    await note_contact(ctx, gate.id, bundle=True)
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
            pseudo = await daily_pseudonym(ctx, seat.subject_id, day)
            listed.append(
                {
                    "h": reservation_hash(salt, pseudo),
                    "starts_at": seat.starts_at.isoformat(),
                    "ends_at": seat.ends_at.isoformat(),
                }
            )
    return listed


async def revoked_code_ids(ctx: AppContext) -> list[str]:
    """Every code id codes publishes as revoked."""
    return (await _revocations(ctx))[0]


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
