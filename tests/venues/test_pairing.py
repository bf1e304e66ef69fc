"""Pairing a gate console: a one-time code from the operator, traded for the gate's
credentials (rotating its secret); wrong, used and expired codes are refused."""

from __future__ import annotations

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import assert_problem
from tests.venues.helpers import make_gate, make_venue


async def _token(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token",
        json={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


async def test_pairing_code_trades_once_for_rotated_credentials(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue, direction="in", name="East")
    made = await client.post(
        f"/v1/venues/{venue.id}/gates/{gate.id}/pairing", headers=venue.operator.headers
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["gate_id"] == gate.id and body["qr_svg"].lstrip().startswith("<")
    paired = await client.post("/v1/gates/pair", json={"pairing_code": body["pairing_code"]})
    assert paired.status_code == 200, paired.text
    creds = paired.json()
    assert (creds["gate_id"], creds["venue_id"], creds["name"], creds["direction"]) == (
        gate.id,
        venue.id,
        "East",
        "in",
    )
    assert creds["client_id"] == gate.client_id and creds["client_secret"] != gate.client_secret
    assert (await _token(client, creds["client_id"], creds["client_secret"])).status_code == 200
    old = await _token(client, gate.client_id, gate.client_secret)
    assert old.status_code == 401, "the secret from before pairing stops working"
    again = await client.post("/v1/gates/pair", json={"pairing_code": body["pairing_code"]})
    assert_problem(again, 400, "pairing_code_invalid")


async def test_code_is_case_and_dash_insensitive(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    code = (
        await client.post(
            f"/v1/venues/{venue.id}/gates/{gate.id}/pairing", headers=venue.operator.headers
        )
    ).json()["pairing_code"]
    typed = code.replace("-", "").lower()
    assert (await client.post("/v1/gates/pair", json={"pairing_code": typed})).status_code == 200


async def test_wrong_and_expired_codes_are_refused(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    wrong = await client.post("/v1/gates/pair", json={"pairing_code": "AAAA-BBBB"})
    assert_problem(wrong, 400, "pairing_code_invalid")
    code = (
        await client.post(
            f"/v1/venues/{venue.id}/gates/{gate.id}/pairing", headers=venue.operator.headers
        )
    ).json()["pairing_code"]
    clock.advance(seconds=11 * 60)
    expired = await client.post("/v1/gates/pair", json={"pairing_code": code})
    assert_problem(expired, 400, "pairing_code_invalid")


async def test_only_the_venue_operator_makes_codes_and_only_for_its_gates(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    other = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    foreign = await client.post(
        f"/v1/venues/{venue.id}/gates/{gate.id}/pairing", headers=other.operator.headers
    )
    assert foreign.status_code == 403
    not_its_gate = await client.post(
        f"/v1/venues/{other.id}/gates/{gate.id}/pairing", headers=other.operator.headers
    )
    assert_problem(not_its_gate, 404, "gate_not_found")
    gate_itself = await client.post(
        f"/v1/venues/{venue.id}/gates/{gate.id}/pairing", headers=gate.headers
    )
    assert gate_itself.status_code == 403


async def test_trades_are_rate_limited(client: httpx.AsyncClient, ctx: AppContext) -> None:
    for _ in range(10):
        await client.post("/v1/gates/pair", json={"pairing_code": "ZZZZ-ZZZZ"})
    limited = await client.post("/v1/gates/pair", json={"pairing_code": "ZZZZ-ZZZZ"})
    assert_problem(limited, 429, "rate_limited")
