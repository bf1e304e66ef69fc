"""`require`, the one authorization helper: scopes, any-of scopes, tenants, admins,
and the audit of every refusal. Exercised through probe routes in a real app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.clock import FrozenClock
from app.context import AppContext
from app.domain import Domain
from app.domains import load_domains
from app.http import json_response
from app.main import create_app
from app.settings import Settings
from auth import scopes as sc
from auth.authz import require
from auth.models import AuditEvent
from tests.factories import assert_problem, machine, resident


async def venue_scan(request: Request) -> Response:
    principal = await require(request, sc.GATES_SCAN, tenant_id=request.path_params["venue"])
    return json_response({"kind": principal.kind, "tenant": principal.tenant_id})


async def venue_edit(request: Request) -> Response:
    venue = request.path_params["venue"]
    principal = await require(request, (sc.VENUES_MANAGE, sc.ADMIN), tenant_id=venue)
    return json_response({"kind": principal.kind})


async def twice(request: Request) -> Response:
    first = await require(request, sc.RESIDENT)
    second = await require(request, sc.RESIDENT)
    return json_response({"same": first is second, "subject": first.subject_id})


PROBE = Domain(
    name="authz-probe",
    routes=[
        Route("/probe/venues/{venue}/scan", venue_scan, methods=["POST"]),
        Route("/probe/venues/{venue}", venue_edit, methods=["PATCH"]),
        Route("/probe/me", twice, methods=["GET"]),
    ],
)


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[object]:
    application = create_app(settings, clock=clock, domains=[*load_domains(), PROBE])
    async with application.router.lifespan_context(application):
        yield application


async def test_gate_may_act_for_its_own_venue_only(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate_a = await machine(client, ctx, "gate", "ven_a")
    ok = await client.post("/probe/venues/ven_a/scan", headers=gate_a.headers)
    assert ok.status_code == 200 and ok.json() == {"kind": "gate", "tenant": "ven_a"}
    other = await client.post("/probe/venues/ven_b/scan", headers=gate_a.headers)
    assert_problem(other, 403, "forbidden")
    event = await AuditEvent.get(action="token_rejected")
    assert event.actor == gate_a.client_id and event.detail["why"] == "tenant"
    assert event.target == "/probe/venues/ven_b/scan" and event.request_id


@pytest.mark.parametrize(
    ("kind", "tenant"), [("operator", "ven_a"), ("hospital", "ven_a"), ("authority", None),
                         ("admin", None)],
)  # fmt: skip
async def test_without_the_scope_even_the_right_tenant_is_refused(
    client: httpx.AsyncClient, ctx: AppContext, kind: str, tenant: str | None
) -> None:
    caller = await machine(client, ctx, kind, tenant)
    response = await client.post("/probe/venues/ven_a/scan", headers=caller.headers)
    assert_problem(response, 403, "forbidden")
    event = await AuditEvent.get(action="token_rejected")
    assert event.detail["why"] == "scope"


async def test_residents_lack_machine_scopes(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    response = await client.post("/probe/venues/ven_a/scan", headers=someone.headers)
    assert_problem(response, 403, "forbidden")


async def test_any_of_scopes_operator_bound_to_venue_admin_platform_wide(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    operator = await machine(client, ctx, "operator", "ven_a")
    admin = await machine(client, ctx, "admin")
    assert (await client.patch("/probe/venues/ven_a", headers=operator.headers)).status_code == 200
    assert_problem(await client.patch("/probe/venues/ven_b", headers=operator.headers), 403,
                   "forbidden")  # fmt: skip
    for venue in ("ven_a", "ven_b"):
        response = await client.patch(f"/probe/venues/{venue}", headers=admin.headers)
        assert response.status_code == 200 and response.json() == {"kind": "admin"}


async def test_admin_does_not_pass_tenant_checks_where_admin_is_not_listed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    assert_problem(await client.post("/probe/venues/ven_a/scan", headers=admin.headers), 403,
                   "forbidden")  # fmt: skip


async def test_principal_is_verified_once_per_request(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    response = await client.get("/probe/me", headers=someone.headers)
    assert response.json() == {"same": True, "subject": someone.subject_id}


async def test_no_token_is_401_and_not_audited(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/probe/venues/ven_a/scan"), 401, "unauthorized")
    assert await AuditEvent.filter(action="token_rejected").count() == 0
