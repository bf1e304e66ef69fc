"""Refresh-token rotation, reuse detection that revokes the family, and logout."""

from __future__ import annotations

import asyncio

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import AuditEvent, RefreshToken
from tests.factories import assert_problem, bearer, resident


async def rotate(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_refresh_returns_a_new_pair_and_kills_the_old_refresh_token(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    response = await rotate(client, someone.refresh_token)
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["refresh_token"] != someone.refresh_token
    assert (await client.get("/v1/residents/me", headers=bearer(pair["access_token"]))).is_success
    assert (await rotate(client, pair["refresh_token"])).status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    rows = await RefreshToken.all()
    assert rows and all(someone.refresh_token not in (r.token_hash, r.id) for r in rows)


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    victim = await resident(client, ctx)
    stolen = victim.refresh_token
    thief_pair = (await rotate(client, stolen)).json()
    # The victim (or the thief) presents the already-used token again.
    reused = await rotate(client, stolen)
    assert_problem(reused, 401, "refresh_reused")
    # Everyone descended from that login must log in again.
    assert_problem(await rotate(client, thief_pair["refresh_token"]), 401, "refresh_reused")
    for token in (thief_pair["access_token"], victim.token):
        response = await client.get("/v1/residents/me", headers=bearer(token))
        assert_problem(response, 401, "unauthorized")
        assert response.json()["reason"] == "revoked"
    assert await AuditEvent.filter(action="refresh_reused").count() >= 1


async def test_reuse_in_one_family_leaves_other_logins_alone(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx)
    clock.advance(seconds=61)
    other_login = await resident(client, ctx, phone=someone.phone, identity=False)
    await rotate(client, someone.refresh_token)
    await rotate(client, someone.refresh_token)
    assert (await rotate(client, other_login.refresh_token)).status_code == 200


async def test_concurrent_refreshes_of_one_token_never_yield_two_live_families(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    responses = await asyncio.gather(*(rotate(client, someone.refresh_token) for _ in range(8)))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    for r in responses:
        if r.status_code != 200:
            assert_problem(r, 401, "refresh_reused")
    # A concurrent duplicate counts as reuse: the family is dead, winner included.
    for pair in winners:
        assert_problem(await rotate(client, pair["refresh_token"]), 401, "refresh_reused")


async def test_unknown_refresh_token_is_refresh_invalid(client: httpx.AsyncClient) -> None:
    assert_problem(await rotate(client, "rt_not-a-real-token"), 401, "refresh_invalid")


async def test_refresh_token_expires_after_30_days(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx)
    clock.advance(days=30)
    assert_problem(await rotate(client, someone.refresh_token), 401, "refresh_invalid")


async def test_logout_revokes_the_family_and_its_access_token(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    response = await client.post("/v1/auth/logout", headers=someone.headers)
    assert response.status_code == 200 and response.json() == {"revoked": True}
    assert_problem(await client.get("/v1/residents/me", headers=someone.headers), 401,
                   "unauthorized")  # fmt: skip
    assert_problem(await rotate(client, someone.refresh_token), 401, "refresh_reused")


async def test_logout_needs_a_resident_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/auth/logout"), 401, "unauthorized")
