"""Venues, gates and who may touch them."""

from __future__ import annotations

import httpx

from app.context import AppContext
from tests.factories import assert_problem, machine, resident
from tests.venues.helpers import make_gate, make_venue


async def test_admin_creates_venue_with_default_policy(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    assert venue.body["policy"] == {
        "allowed_statuses": ["green"],
        "reservation_required": False,
        "anti_passback": True,
        "reentry_allowed": True,
        "min_age": None,
        "id_card_allowed": True,
        "printed_codes_offline": False,
    }
    assert venue.body["occupancy"] == 0
    listed = await client.get("/v1/venues")
    assert [v["id"] for v in listed.json()["items"]] == [venue.id]
    one = await client.get(f"/v1/venues/{venue.id}")
    assert one.status_code == 200 and one.json()["capacity"] == 100


async def test_only_admin_creates_venues(client: httpx.AsyncClient, ctx: AppContext) -> None:
    venue = await make_venue(client, ctx)
    body = {"name": "x", "kind": "library", "capacity": 5}
    for headers in (venue.operator.headers, (await resident(client, ctx)).headers):
        denied = await client.post("/v1/venues", json=body, headers=headers)
        assert_problem(denied, 403, "forbidden")
    assert (await client.post("/v1/venues", json=body)).status_code == 401


async def test_operator_edits_own_venue_not_another(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mine = await make_venue(client, ctx)
    other = await make_venue(client, ctx)
    patched = await client.patch(
        f"/v1/venues/{mine.id}",
        json={"capacity": 7, "policy": {"allowed_statuses": ["green", "yellow"]}},
        headers=mine.operator.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == 7
    assert patched.json()["policy"]["allowed_statuses"] == ["green", "yellow"]
    denied = await client.patch(
        f"/v1/venues/{other.id}", json={"capacity": 1}, headers=mine.operator.headers
    )
    assert denied.status_code == 403
    assert (await client.get(f"/v1/venues/{other.id}")).json()["capacity"] == 100


async def test_unknown_venue_is_404_and_bad_body_422(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    assert_problem(await client.get("/v1/venues/ven_nope"), 404, "venue_not_found")
    admin = await machine(client, ctx, "admin")
    bad = await client.post(
        "/v1/venues", json={"name": "x", "kind": "zoo", "capacity": -1}, headers=admin.headers
    )
    assert_problem(bad, 422, "validation_failed")


async def test_gate_credentials_are_shown_once_and_work(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue, direction="in")
    assert gate.client_secret.startswith("cs_")
    bundle = await client.get("/v1/gates/bundle", headers=gate.headers)
    assert bundle.status_code == 200, bundle.text
    assert bundle.json()["document"]["venue_id"] == venue.id


async def test_another_venues_operator_cannot_register_gates_or_slots(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mine = await make_venue(client, ctx)
    other = await make_venue(client, ctx)
    h = mine.operator.headers
    calls = [
        client.post(f"/v1/venues/{other.id}/gates", json={"name": "x"}, headers=h),
        client.post(
            f"/v1/venues/{other.id}/slots",
            json={
                "starts_at": "2030-01-01T00:00:00Z",
                "ends_at": "2030-01-01T01:00:00Z",
                "capacity": 1,
            },
            headers=h,
        ),
        client.get(f"/v1/venues/{other.id}/occupancy", headers=h),
        client.get(f"/v1/venues/{other.id}/entries", headers=h),
        client.patch(f"/v1/venues/{other.id}", json={"name": "mine now"}, headers=h),
    ]
    for call in calls:
        response = await call
        assert_problem(response, 403, "forbidden")


async def test_gate_tokens_cannot_manage_venues(client: httpx.AsyncClient, ctx: AppContext) -> None:
    venue = await make_venue(client, ctx)
    gate = await make_gate(client, venue)
    for response in (
        await client.get(f"/v1/venues/{venue.id}/entries", headers=gate.headers),
        await client.post(f"/v1/venues/{venue.id}/gates", json={"name": "x"}, headers=gate.headers),
    ):
        assert response.status_code == 403


async def test_openapi_documents_every_venues_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/v1/venues", "/v1/gates/scan", "/v1/gates/sync", "/v1/reservations",
                 "/v1/venues/{venue_id}/place-code", "/v1/residents/me/visits"):  # fmt: skip
        assert path in paths
    assert "409" in paths["/v1/reservations"]["post"]["responses"]
