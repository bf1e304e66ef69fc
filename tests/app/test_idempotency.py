"""The Idempotency-Key mechanism, through a real app route that counts its side effects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import idempotency
from app.clock import FrozenClock, SystemClock
from app.context import app_context
from app.domain import Domain
from app.domains import load_domains
from app.errors import Conflict
from app.http import endpoint, read_json
from app.idempotency import StoredResponse, idempotent_json
from app.main import create_app
from app.settings import Settings
from tests.factories import assert_problem

# Also on PostgreSQL + Redis Cluster (`cluster` backend) when CI starts one.
pytestmark = pytest.mark.cluster


class Transfer(BaseModel):
    amount_fen: int
    delay_s: float = 0.0
    fail: str | None = None


class Ledger:
    def __init__(self) -> None:
        self.applied: list[int] = []
        self.attempts = 0


@endpoint(summary="apply a transfer once", body=Transfer)
async def transfer(request: Request) -> Response:
    body = await read_json(request, Transfer)
    ledger: Ledger = request.app.state.probe_ledger

    async def apply() -> StoredResponse:
        ledger.attempts += 1
        await asyncio.sleep(body.delay_s)
        if body.fail == "conflict":
            raise Conflict(f"attempt {ledger.attempts} refused")
        if body.fail == "crash" and ledger.attempts == 1:
            raise RuntimeError("provider exploded")
        ledger.applied.append(body.amount_fen)
        return StoredResponse(201, {"applied": body.amount_fen, "attempt": ledger.attempts})

    return await idempotent_json(
        request, app_context(request), owner=request.headers.get("x-caller", "c1"), action=apply
    )


PROBE = Domain(name="probe", routes=[Route("/v1/probe/transfers", transfer, methods=["POST"])])


@pytest.fixture
async def env(
    settings: Settings, clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Ledger]]:
    application = create_app(settings, clock=clock, domains=[*load_domains(), PROBE])
    ledger = Ledger()
    application.state.probe_ledger = ledger
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c, ledger


Env = tuple[httpx.AsyncClient, "Ledger"]


def post(
    client: httpx.AsyncClient, key: str | None, body: dict[str, object], caller: str = "c1"
) -> Coroutine[Any, Any, httpx.Response]:
    headers = {"x-caller": caller}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/probe/transfers", json=body, headers=headers)


async def test_same_key_same_body_replays_without_second_effect(env: Env) -> None:
    client, ledger = env
    first = await post(client, "k1", {"amount_fen": 500})
    again = await post(client, "k1", {"amount_fen": 500})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert ledger.applied == [500]


async def test_same_key_other_body_is_422(env: Env) -> None:
    client, ledger = env
    await post(client, "k2", {"amount_fen": 500})
    response = await post(client, "k2", {"amount_fen": 900})
    assert_problem(response, 422, "idempotency_key_reused")
    assert ledger.applied == [500]


async def test_keys_are_scoped_per_caller(env: Env) -> None:
    client, ledger = env
    await post(client, "shared", {"amount_fen": 1}, caller="hospital-a")
    await post(client, "shared", {"amount_fen": 2}, caller="hospital-b")
    assert sorted(ledger.applied) == [1, 2]


async def test_concurrent_duplicates_apply_once_and_others_are_told_in_progress(env: Env) -> None:
    client, ledger = env
    responses = await asyncio.gather(
        *(post(client, "k3", {"amount_fen": 700, "delay_s": 0.2}) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "request_in_progress")
    assert statuses.count(409) == 7
    assert ledger.applied == [700]


async def test_client_error_is_replayed_not_rerun(env: Env) -> None:
    client, ledger = env
    first = await post(client, "k4", {"amount_fen": 5, "fail": "conflict"})
    again = await post(client, "k4", {"amount_fen": 5, "fail": "conflict"})
    assert first.status_code == again.status_code == 409
    assert again.json()["detail"] == first.json()["detail"] == "attempt 1 refused"
    assert ledger.attempts == 1


async def test_server_failure_releases_the_key_for_a_retry(env: Env) -> None:
    client, ledger = env
    first = await post(client, "k5", {"amount_fen": 8, "fail": "crash"})
    assert first.status_code == 500
    retry = await post(client, "k5", {"amount_fen": 8, "fail": "crash"})
    assert retry.status_code == 201
    assert ledger.applied == [8]


async def test_missing_key_is_400(env: Env) -> None:
    client, ledger = env
    response = await post(client, None, {"amount_fen": 1})
    assert_problem(response, 400, "idempotency_key_required")
    assert ledger.applied == []


async def test_key_expires_after_24_hours(env: Env, clock: FrozenClock) -> None:
    client, ledger = env
    await post(client, "k6", {"amount_fen": 3})
    clock.advance(timedelta(hours=24, seconds=1))
    response = await post(client, "k6", {"amount_fen": 4})
    assert response.status_code == 201
    assert ledger.applied == [3, 4]


async def test_a_live_request_keeps_its_key_past_the_lease(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease is short so a crashed holder frees its key within seconds; a live one
    renews it, so a duplicate sent after the first lease ran out still gets 409."""
    monkeypatch.setattr(idempotency, "LEASE", timedelta(seconds=0.6))
    monkeypatch.setattr(idempotency, "RENEW_EVERY", timedelta(seconds=0.2))
    application = create_app(settings, clock=SystemClock(), domains=[*load_domains(), PROBE])
    ledger = Ledger()
    application.state.probe_ledger = ledger
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(post(client, "k7", {"amount_fen": 9, "delay_s": 1.5}))
            await asyncio.sleep(1.0)
            duplicate = await post(client, "k7", {"amount_fen": 9, "delay_s": 1.5})
            assert duplicate.status_code == 409, duplicate.text
            assert (await first).status_code == 201
    assert ledger.applied == [9]
