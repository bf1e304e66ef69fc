"""Venues and their gates: creating, listing and editing venues, registering gates, and
finding the venue and gate a scan speaks for (cached briefly in the runtime)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.context import AppContext
from auth.api import Principal, create_client
from codes.api import sign_place_code
from venues.config import CONTACT_WRITE_S, VENUE_CACHE_S, VenueSnapshot, VenuesRuntime
from venues.errors import GateNotFound, VenueNotFound
from venues.models import Gate, Venue
from venues.policy import VenuePolicy
from venues.states import GateDirection


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def policy_of(venue: Venue) -> VenuePolicy:
    return VenuePolicy.from_json(venue.policy or {})


async def create_venue(
    ctx: AppContext,
    *,
    name: str,
    kind: str,
    district: str,
    address: str,
    opening_hours: Mapping[str, str],
    capacity: int,
    policy: dict[str, Any],
) -> Venue:
    now = ctx.clock.now()
    venue_id = new_id("ven")
    return await Venue.create(
        id=venue_id,
        name=name,
        kind=kind,
        district=district,
        address=address,
        opening_hours=dict(opening_hours),
        capacity=capacity,
        policy=policy,
        # Signed once: the printed poster stays valid as long as the venue exists.
        place_code=sign_place_code(ctx, venue_id),
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
        ctx.runtime(VenuesRuntime).venues.pop(venue_id, None)
    return venue


async def venue_snapshot(ctx: AppContext, venue_id: str) -> VenueSnapshot:
    """The venue's capacity and policy for a scan, from the cache while it is fresh."""
    rt = ctx.runtime(VenuesRuntime)
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


@dataclass(frozen=True)
class RegisteredGate:
    gate: Gate
    client_secret: str
    scope: str


async def register_gate(
    ctx: AppContext,
    venue_id: str,
    *,
    name: str,
    direction: GateDirection,
    actor: Principal | str,
) -> RegisteredGate:
    """A gate and its machine client; the secret is in this answer only."""
    await get_venue(venue_id)
    creds = await create_client(ctx, "gate", venue_id, actor=actor)
    gate = await Gate.create(
        id=creds.client_id,
        venue_id=venue_id,
        name=name,
        direction=direction,
        client_id=creds.client_id,
        created_at=ctx.clock.now(),
    )
    ctx.runtime(VenuesRuntime).gates[creds.client_id] = (venue_id, direction)
    return RegisteredGate(gate, creds.client_secret, creds.scope)


@dataclass(frozen=True)
class GateRef:
    id: str
    venue_id: str
    direction: GateDirection


async def gate_for(ctx: AppContext, principal: Principal) -> GateRef:
    """The gate a gate token speaks for (registered through POST /v1/venues/{id}/gates)."""
    rt = ctx.runtime(VenuesRuntime)
    known = rt.gates.get(principal.id)
    if known is None:
        gate = await Gate.get_or_none(id=principal.id)
        if gate is None or gate.venue_id != principal.tenant_id:
            raise GateNotFound("this client is not a registered gate")
        known = rt.gates[principal.id] = (gate.venue_id, GateDirection(gate.direction))
    return GateRef(principal.id, known[0], known[1])


async def note_contact(ctx: AppContext, gate_id: str, *, bundle: bool = False) -> None:
    """Record that a gate called the API now. On the scan path this is at most one UPDATE
    per gate every CONTACT_WRITE_S (the last write time is kept in the runtime, per
    process); a bundle fetch is rare and always writes, with `bundle_fetched_at`."""
    rt = ctx.runtime(VenuesRuntime)
    now = ctx.clock.now()
    written = rt.contacts.get(gate_id)
    if not bundle and written is not None and now - written < timedelta(seconds=CONTACT_WRITE_S):
        return
    changes: dict[str, datetime] = {"last_contact_at": now}
    if bundle:
        changes["bundle_fetched_at"] = now
    rt.contacts[gate_id] = now
    await Gate.filter(id=gate_id).update(**changes)
