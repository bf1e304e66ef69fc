"""Pairing a gate console: the operator asks for a one-time code, the console trades it for
the gate's client credentials, so no secret is ever typed or shown.

The code (`XXXX-XXXX`, an unambiguous alphabet) lives only in the key-value store, under the
SHA-256 of its normalised form, for `PAIRING_TTL`; it is deleted on first use. Trading it
rotates the gate client's secret (`auth.api.rotate_client`), so the secret handed out
before stops working. Trades are rate limited per client address.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.context import AppContext
from app.errors import RateLimited
from auth.api import rotate_client
from venues.errors import GateNotFound, PairingCodeInvalid
from venues.models import Gate

PAIRING_TTL = timedelta(minutes=10)
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
TRADES_PER_MINUTE = 10


@dataclass(frozen=True)
class PairingCode:
    pairing_code: str
    gate_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Paired:
    gate: Gate
    client_id: str
    client_secret: str
    scope: str


def normalise(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def _key(ctx: AppContext, code: str) -> str:
    digest = hashlib.sha256(normalise(code).encode()).hexdigest()
    return ctx.kv.keys.key("venues", "pairing", digest)


async def create_pairing(ctx: AppContext, venue_id: str, gate_id: str) -> PairingCode:
    gate = await Gate.get_or_none(id=gate_id, venue_id=venue_id)
    if gate is None:
        raise GateNotFound()
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    code = f"{raw[:4]}-{raw[4:]}"
    ttl_ms = int(PAIRING_TTL.total_seconds() * 1000)
    expires_at = ctx.clock.now() + PAIRING_TTL
    # The store forgets it after the TTL; the expiry kept beside it is what decides.
    stored = f"{gate.id} {int(expires_at.timestamp())}"
    await ctx.kv.set(_key(ctx, code), stored, ttl_ms=ttl_ms)
    return PairingCode(code, gate.id, expires_at)


async def trade(ctx: AppContext, code: str, client_ip: str) -> Paired:
    now = ctx.clock.now()
    hit = await ctx.kv.window_hit(
        ctx.kv.keys.key("venues", "pairing-trade", client_ip or "unknown"),
        now_ms=int(now.timestamp() * 1000),
        window_ms=60_000,
        limit=TRADES_PER_MINUTE,
        member=secrets.token_hex(8),
    )
    if not hit.allowed:
        raise RateLimited(max(1, hit.retry_after_ms // 1000))
    key = _key(ctx, code)
    stored = await ctx.kv.get(key)
    # Single use: of two concurrent trades only the one whose delete removed the key wins.
    if stored is None or await ctx.kv.delete(key) == 0:
        raise PairingCodeInvalid()
    gate_id, _, expires = stored.decode().partition(" ")
    if int(expires) <= now.timestamp():
        raise PairingCodeInvalid()
    gate = await Gate.get_or_none(id=gate_id)
    if gate is None:
        raise PairingCodeInvalid()
    credentials = await rotate_client(ctx, gate.client_id, actor=f"pairing:{gate.id}")
    return Paired(gate, credentials.client_id, credentials.client_secret, credentials.scope)
