"""Helpers for venues tests: a venue made by an admin, its operator, registered gates,
slots, residents' codes. Everything goes through the HTTP API like a real client."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import Machine, Resident, machine
from venues.config import VenueRules
from venues.offline_gate import OfflineGate

_SCAN_SEQ = itertools.count(1)


@dataclass(frozen=True)
class Gate:
    id: str
    client_id: str
    client_secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class VenueKit:
    id: str
    admin: Machine
    operator: Machine
    body: dict[str, Any]


async def make_venue(
    client: httpx.AsyncClient, ctx: AppContext, *, capacity: int = 100, **policy: Any
) -> VenueKit:
    admin = await machine(client, ctx, "admin")
    created = await client.post(
        "/v1/venues",
        json={
            "name": "上海博物馆",
            "kind": "museum",
            "district": "闵行区",
            "address": "新镇路 1 号",
            "capacity": capacity,
            "policy": policy,
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    operator = await machine(client, ctx, "operator", body["id"])
    return VenueKit(body["id"], admin, operator, body)


async def make_gate(
    client: httpx.AsyncClient, venue: VenueKit, *, direction: str = "both", name: str = "G"
) -> Gate:
    made = await client.post(
        f"/v1/venues/{venue.id}/gates",
        json={"name": name, "direction": direction},
        headers=venue.operator.headers,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    token = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": body["client_id"],
            "client_secret": body["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    return Gate(body["id"], body["client_id"], body["client_secret"], token.json()["access_token"])


async def make_slot(
    client: httpx.AsyncClient,
    venue: VenueKit,
    starts_at: datetime,
    *,
    capacity: int = 10,
    walk_in: int = 0,
    length: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    made = await client.post(
        f"/v1/venues/{venue.id}/slots",
        json={
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + length).isoformat(),
            "capacity": capacity,
            "walk_in": walk_in,
        },
        headers=venue.operator.headers,
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def scan_id() -> str:
    return f"scan-{next(_SCAN_SEQ):08d}"


async def scan(
    client: httpx.AsyncClient,
    gate: Gate,
    code: str,
    direction: str = "in",
    *,
    sid: str | None = None,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/gates/scan",
        json={"scan_id": sid or scan_id(), "code": code, "direction": direction, **extra},
        headers=gate.headers,
    )


async def book(
    client: httpx.AsyncClient, resident: Resident, slot_id: str, dependents: list[str] | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/reservations",
        json={"slot_id": slot_id, "dependents": dependents or []},
        headers=resident.headers,
    )


def local_time(now: datetime, *, days: int, hour: int) -> datetime:
    """`hour` o'clock Shanghai time, `days` local days after `now`'s local day."""
    rules = VenueRules()
    start, _ = rules.day_bounds(rules.local_day(now) + timedelta(days=days))
    return start + timedelta(hours=hour)


async def warm_kv(ctx: AppContext, connections: int) -> None:
    """Open the key-value store's connections in steps, as a server that has been serving
    has them: opening hundreds at once costs more than the 0.5 s Redis timeout."""
    for n in range(25, connections + 1, 25):
        await asyncio.gather(*(ctx.kv.get(ctx.kv.keys.key("warm", i)) for i in range(n)))


async def offline(client: httpx.AsyncClient, gate: Gate, clock: FrozenClock) -> OfflineGate:
    """The gate's offline client, loaded from a bundle fetched now."""
    bundle = await client.get("/v1/gates/bundle", headers=gate.headers)
    assert bundle.status_code == 200, bundle.text
    keys = (await client.get("/v1/gates/bundle/keys")).json()
    return OfflineGate.load(bundle.json()["bundle"], keys, gate.client_id, clock.now())


async def sync(
    client: httpx.AsyncClient, gate: Gate, scans: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """POST /v1/gates/sync; the answer's body (asserted 200)."""
    response = await client.post(
        "/v1/gates/sync", json={"scans": scans, **extra}, headers=gate.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def occupancy(client: httpx.AsyncClient, venue: VenueKit) -> int:
    got = await client.get(f"/v1/venues/{venue.id}/occupancy", headers=venue.operator.headers)
    assert got.status_code == 200, got.text
    value: int = got.json()["occupancy"]
    return value


async def set_status(
    client: httpx.AsyncClient, ctx: AppContext, subject_id: str | None, status: str
) -> None:
    """The health authority sets a person's colour now."""
    authority = await machine(client, ctx, "authority")
    changed = await client.put(
        f"/v1/health-status/{subject_id}",
        json={"status": status, "reason": "test"},
        headers=authority.headers,
    )
    assert changed.status_code == 200, changed.text


def conflicts_of(result: dict[str, Any]) -> dict[str, set[str]]:
    """A sync answer's conflicts, by scan_id."""
    return {c["scan_id"]: set(c["conflicts"]) for c in result["conflicts"]}
