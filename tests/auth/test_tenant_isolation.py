"""Every machine-facing route of every domain, called with every kind of token: only the
kinds the contract names get past `require`, and a tenant-bound client never reaches
another tenant's venue or hospital. (Each domain's own tests cover what happens next.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.context import AppContext
from tests.factories import assert_problem, code_of, machine, resident
from tests.payments.helpers import Hospital, hospital, item, open_encounter, patient
from tests.venues.helpers import VenueKit, make_gate, make_venue

KINDS = ("resident", "gate", "operator", "hospital", "authority", "admin")


@dataclass
class World:
    venue_a: VenueKit
    venue_b: VenueKit
    hospital_a: Hospital
    hospital_b: Hospital
    encounter_a: str
    charge_a: str
    subject_id: str
    code: str
    headers: dict[str, dict[str, str]]  # kind -> Authorization header (tenant A)


@pytest.fixture
async def world(client: httpx.AsyncClient, ctx: AppContext) -> World:
    venue_a, venue_b = await make_venue(client, ctx), await make_venue(client, ctx)
    gate_a = await make_gate(client, venue_a)
    hospital_a, hospital_b = await hospital(client, ctx), await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, hospital_a, person)
    charge_id = f"c-{uuid.uuid4()}"
    charged = await client.post(
        f"/v1/encounters/{encounter['id']}/charges",
        json={"charge_id": charge_id, "items": [item(100)]},
        headers=hospital_a.headers,
    )
    assert charged.status_code == 201, charged.text
    code = await code_of(client, person)
    someone = await resident(client, ctx)
    authority = await machine(client, ctx, "authority")
    return World(
        venue_a=venue_a,
        venue_b=venue_b,
        hospital_a=hospital_a,
        hospital_b=hospital_b,
        encounter_a=encounter["id"],
        charge_a=charge_id,
        subject_id=str(person.subject_id),
        code=code,
        headers={
            "resident": someone.headers,
            "gate": gate_a.headers,
            "operator": venue_a.operator.headers,
            "hospital": hospital_a.headers,
            "authority": authority.headers,
            "admin": venue_a.admin.headers,
        },
    )


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # {venue} / {encounter} / {subject} filled from the world (tenant A)
    allowed: frozenset[str]
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    idempotent: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def later() -> str:
    return (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0).isoformat()


CALLS = [
    Call("POST", "/v1/admin/clients", frozenset({"admin"}), {"kind": "authority"}),
    Call("POST", "/v1/venues", frozenset({"admin"}),
         {"name": "图书馆", "kind": "library", "capacity": 5}),
    Call("PATCH", "/v1/venues/{venue}", frozenset({"operator", "admin"}), {"capacity": 50}),
    Call("POST", "/v1/venues/{venue}/gates", frozenset({"operator"}), {"name": "east"}),
    Call("POST", "/v1/venues/{venue}/slots", frozenset({"operator"}),
         {"starts_at": "{later}", "ends_at": "{later+1h}", "capacity": 3}),
    Call("GET", "/v1/venues/{venue}/occupancy", frozenset({"operator"})),
    Call("GET", "/v1/venues/{venue}/entries", frozenset({"operator"})),
    Call("POST", "/v1/gates/scan", frozenset({"gate"}),
         {"scan_id": "{uuid}", "code": "{code}", "direction": "in"}),
    Call("POST", "/v1/gates/scan/scan-unknown/annul", frozenset({"gate"})),
    Call("GET", "/v1/gates/bundle", frozenset({"gate"})),
    Call("POST", "/v1/gates/sync", frozenset({"gate"}),
         {"scans": [{"scan_id": "{uuid}", "code": "{code}", "direction": "in",
                     "scanned_at": "{now}", "decision": "admit"}]}),
    Call("POST", "/v1/codes/verify", frozenset({"gate", "hospital", "authority"}),
         {"code": "{code}"}),
    Call("GET", "/v1/codes/revocations", frozenset({"gate", "hospital", "authority"})),
    Call("POST", "/v1/codes/revoke", frozenset({"resident", "admin"}),
         {"subject_id": "{subject}"}),
    Call("GET", "/v1/health-status/{subject}", frozenset({"authority"})),
    Call("GET", "/v1/health-status/{subject}/history", frozenset({"authority"})),
    Call("PUT", "/v1/health-status/{subject}", frozenset({"authority"}),
         {"status": "green", "reason": "screening"}),
    Call("POST", "/v1/health-status:batch", frozenset({"authority"}),
         {"entries": [{"subject_id": "{subject}", "status": "green", "reason": "screening"}]}),
    Call("POST", "/v1/hospitals", frozenset({"admin"}), {"name": "华山医院"}),
    Call("PUT", "/v1/hospitals/me/webhook", frozenset({"hospital"}),
         {"url": "https://his.example.com/hook"}),
    Call("GET", "/v1/hospitals/me/statements", frozenset({"hospital"}),
         params={"date": "2026-01-15"}),
    Call("POST", "/v1/encounters", frozenset({"hospital"}),
         {"code": "{code}", "department": "内科"}, idempotent=True),
    Call("GET", "/v1/encounters/{encounter}", frozenset({"hospital"})),
    Call("POST", "/v1/encounters/{encounter}/charges", frozenset({"hospital"}),
         {"charge_id": "{uuid}", "items": [item(100)]}),
    Call("POST", "/v1/encounters/{encounter}/refunds", frozenset({"hospital"}),
         {"refund_id": "{uuid}", "charge_id": "{charge}", "amount_fen": 1}),
    Call("POST", "/v1/encounters/{encounter}/close", frozenset({"hospital"}), idempotent=True),
]  # fmt: skip


def fill(value: Any, world: World, venue: str, encounter: str) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, world, venue, encounter) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world, venue, encounter) for v in value]
    if not isinstance(value, str):
        return value
    start = (datetime.now(UTC) + timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    replacements = {
        "{later}": start.isoformat(),
        "{later+1h}": (start + timedelta(hours=1)).isoformat(),
        "{now}": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "{uuid}": str(uuid.uuid4()),
        "{code}": world.code,
        "{charge}": world.charge_a,
    }
    if value in replacements:
        return replacements[value]
    return (
        value.replace("{venue}", venue)
        .replace("{encounter}", encounter)
        .replace("{subject}", world.subject_id)
    )


async def send(
    client: httpx.AsyncClient,
    world: World,
    call: Call,
    headers: dict[str, str],
    *,
    venue: str | None = None,
    encounter: str | None = None,
) -> httpx.Response:
    venue, encounter = venue or world.venue_a.id, encounter or world.encounter_a
    extra = {"Idempotency-Key": str(uuid.uuid4())} if call.idempotent else {}
    return await client.request(
        call.method,
        fill(call.path, world, venue, encounter),
        json=fill(call.body, world, venue, encounter) if call.body is not None else None,
        params=call.params,
        headers={**headers, **extra},
    )


@pytest.mark.parametrize("call", CALLS, ids=str)
async def test_only_the_named_kinds_get_past_authorization(
    client: httpx.AsyncClient, world: World, call: Call
) -> None:
    # The close call goes last among the allowed, so the encounter stays open for the rest.
    for kind in sorted(KINDS, key=lambda k: k in call.allowed):
        response = await send(client, world, call, world.headers[kind])
        if kind in call.allowed:
            assert response.status_code not in (401, 403), (kind, response.text)
        else:
            assert_problem(response, 403, "forbidden")
    assert_problem(await send(client, world, call, {}), 401, "unauthorized")


@pytest.mark.parametrize(
    "call", [c for c in CALLS if "{venue}" in c.path and "operator" in c.allowed], ids=str
)
async def test_an_operator_never_reaches_another_venue(
    client: httpx.AsyncClient, world: World, call: Call
) -> None:
    response = await send(
        client, world, call, world.venue_b.operator.headers, venue=world.venue_a.id
    )
    assert_problem(response, 403, "forbidden")


async def test_a_gate_scans_only_for_its_own_venue(
    client: httpx.AsyncClient, ctx: AppContext, world: World
) -> None:
    gate_b = await make_gate(client, world.venue_b)
    bundle = (await client.get("/v1/gates/bundle", headers=gate_b.headers)).json()
    assert bundle["document"]["venue_id"] == world.venue_b.id
    person = await resident(client, ctx)
    code = await code_of(client, person)
    scanned = await client.post(
        "/v1/gates/scan",
        json={"scan_id": str(uuid.uuid4()), "code": code, "direction": "in"},
        headers=gate_b.headers,
    )
    assert scanned.status_code == 200, scanned.text
    occupancy_a = await client.get(
        f"/v1/venues/{world.venue_a.id}/occupancy", headers=world.venue_a.operator.headers
    )
    assert occupancy_a.json()["occupancy"] == 0


@pytest.mark.parametrize("call", [c for c in CALLS if "{encounter}" in c.path], ids=str)
async def test_a_hospital_never_reaches_another_hospitals_encounter(
    client: httpx.AsyncClient, world: World, call: Call
) -> None:
    response = await send(client, world, call, world.hospital_b.headers)
    # 404 rather than 403: whether the encounter exists must not leak either.
    assert response.status_code in (403, 404), response.text
    got = await client.get(f"/v1/encounters/{world.encounter_a}", headers=world.hospital_a.headers)
    assert got.json()["status"] == "open"
