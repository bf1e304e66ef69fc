"""Machine clients: admin creation, client-credentials grant, rotation, disabling,
failure rate limits, the CLI that makes the first admin, and the demo seed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.context import AppContext
from app.settings import Settings
from auth.clients import create_client
from auth.errors import TenantNotAllowed, TenantRequired
from auth.models import AuditEvent, Client
from auth.sessions import authenticate
from auth.wiring import seed_demo
from tests.conftest import REPO, server_env
from tests.factories import Machine, assert_problem, bearer, machine, resident


async def grant(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token",
        json={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


async def create(
    client: httpx.AsyncClient, admin: Machine, kind: str, tenant_id: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"kind": kind}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    return await client.post("/v1/admin/clients", json=body, headers=admin.headers)


@pytest.mark.parametrize(
    ("kind", "tenant", "scope"),
    [
        ("gate", "ven_1", "codes:verify gates:scan"),
        ("operator", "ven_1", "venues:manage"),
        ("hospital", "hos_1", "codes:verify encounters:write"),
        ("authority", None, "codes:verify status:write"),
        ("admin", None, "admin"),
    ],
)
async def test_admin_creates_each_kind_with_its_scopes_and_it_gets_tokens(
    client: httpx.AsyncClient, ctx: AppContext, kind: str, tenant: str | None, scope: str
) -> None:
    admin = await machine(client, ctx, "admin")
    response = await create(client, admin, kind, tenant)
    assert response.status_code == 201, response.text
    creds = response.json()
    assert creds["scope"] == scope and creds["tenant_id"] == tenant
    assert creds["client_secret"].startswith("cs_") and len(creds["client_secret"]) > 40
    token = await grant(client, creds["client_id"], creds["client_secret"])
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == scope and token.json()["token_type"] == "Bearer"
    assert token.json()["expires_in"] == 900


async def test_secret_is_stored_hashed_and_never_shown_again(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", tenant_id="ven_1")
    row = await Client.get(id=gate.client_id)
    assert gate.client_secret not in str(row.__dict__)
    events = await AuditEvent.filter(target=gate.client_id)
    assert events and all(gate.client_secret not in str(e.__dict__) for e in events)


@pytest.mark.parametrize("kind", ["gate", "operator", "hospital"])
async def test_tenant_bound_kinds_need_a_tenant(
    client: httpx.AsyncClient, ctx: AppContext, kind: str
) -> None:
    admin = await machine(client, ctx, "admin")
    assert_problem(await create(client, admin, kind), 422, "tenant_required")
    with pytest.raises(TenantRequired):
        await create_client(ctx, kind, None, actor="tests")


@pytest.mark.parametrize("kind", ["authority", "admin"])
async def test_platform_kinds_take_no_tenant(
    client: httpx.AsyncClient, ctx: AppContext, kind: str
) -> None:
    admin = await machine(client, ctx, "admin")
    assert_problem(await create(client, admin, kind, "ven_1"), 422, "tenant_not_allowed")
    with pytest.raises(TenantNotAllowed):
        await create_client(ctx, kind, "ven_1", actor="tests")


async def test_unknown_kind_is_422(client: httpx.AsyncClient, ctx: AppContext) -> None:
    admin = await machine(client, ctx, "admin")
    assert_problem(await create(client, admin, "janitor"), 422, "validation_failed")


@pytest.mark.parametrize("kind", ["gate", "operator", "hospital", "authority"])
async def test_only_admins_manage_clients(
    client: httpx.AsyncClient, ctx: AppContext, kind: str
) -> None:
    caller = await machine(client, ctx, kind, None if kind == "authority" else "ten_1")
    admin = await machine(client, ctx, "admin")
    victim = await machine(client, ctx, "gate", "ven_9")
    assert_problem(await create(client, caller, "admin"), 403, "forbidden")
    for action in ("rotate", "disable"):
        response = await client.post(
            f"/v1/admin/clients/{victim.client_id}/{action}", headers=caller.headers
        )
        assert_problem(response, 403, "forbidden")
    rejected = await AuditEvent.filter(action="token_rejected", actor=caller.client_id).count()
    assert rejected == 3
    assert (await create(client, admin, "authority")).status_code == 201


async def test_residents_cannot_manage_clients(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx)
    response = await client.post("/v1/admin/clients", json={"kind": "admin"},
                                 headers=someone.headers)  # fmt: skip
    assert_problem(response, 403, "forbidden")
    assert_problem(await client.post("/v1/admin/clients", json={"kind": "admin"}), 401,
                   "unauthorized")  # fmt: skip


async def test_wrong_secret_unknown_client_and_wrong_grant_are_refused(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", "ven_1")
    assert_problem(await grant(client, gate.client_id, "cs_wrong"), 401, "invalid_client")
    assert_problem(await grant(client, "cl_nobody", gate.client_secret), 401, "invalid_client")
    response = await client.post(
        "/v1/auth/token",
        json={"grant_type": "password", "client_id": gate.client_id,
              "client_secret": gate.client_secret},
    )  # fmt: skip
    assert_problem(response, 400, "unsupported_grant_type")
    assert await AuditEvent.filter(action="client_auth_failed").count() == 2


async def test_rotation_kills_the_old_secret_and_its_tokens(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    hospital = await machine(client, ctx, "hospital", "hos_1")
    response = await client.post(
        f"/v1/admin/clients/{hospital.client_id}/rotate", headers=admin.headers
    )
    assert response.status_code == 200, response.text
    new_secret = response.json()["client_secret"]
    assert new_secret != hospital.client_secret
    assert_problem(await grant(client, hospital.client_id, hospital.client_secret), 401,
                   "invalid_client")  # fmt: skip
    fresh = await grant(client, hospital.client_id, new_secret)
    assert fresh.status_code == 200
    old_principal_call = await service_check(ctx, hospital.token)
    assert old_principal_call == "revoked"
    assert await service_check(ctx, fresh.json()["access_token"]) == "ok"
    assert await AuditEvent.filter(action="client_rotated", target=hospital.client_id).exists()


async def service_check(ctx: AppContext, token: str) -> str:
    try:
        await authenticate(ctx, token)
    except Exception as exc:
        return str(getattr(exc, "extra", {}).get("reason"))
    return "ok"


async def test_disabled_client_gets_no_tokens_and_its_tokens_die(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    gate = await machine(client, ctx, "gate", "ven_1")
    response = await client.post(
        f"/v1/admin/clients/{gate.client_id}/disable", headers=admin.headers
    )
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert_problem(await grant(client, gate.client_id, gate.client_secret), 401, "invalid_client")
    assert await service_check(ctx, gate.token) == "revoked"
    rotate = await client.post(f"/v1/admin/clients/{gate.client_id}/rotate", headers=admin.headers)
    assert_problem(rotate, 409, "client_disabled")


async def test_rotating_or_disabling_an_unknown_client_is_404(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    for action in ("rotate", "disable"):
        response = await client.post(f"/v1/admin/clients/cl_nobody/{action}",
                                     headers=admin.headers)  # fmt: skip
        assert_problem(response, 404, "not_found")


async def test_repeated_client_failures_are_rate_limited_even_with_the_right_secret(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", "ven_1")
    await asyncio.gather(*(grant(client, gate.client_id, "cs_guess") for _ in range(10)))
    response = await grant(client, gate.client_id, gate.client_secret)
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


@pytest.fixture
async def remote_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_failures_from_one_address_across_clients_are_rate_limited(
    remote_client: httpx.AsyncClient, ctx: AppContext
) -> None:
    for i in range(50):
        await grant(remote_client, f"cl_guess_{i}", "cs_guess")
    assert_problem(await grant(remote_client, "cl_another", "cs_guess"), 429, "rate_limited")


async def test_cli_creates_the_first_admin_which_then_works(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "clients", "create", "--kind", "admin", "--json"],
        cwd=REPO, env=server_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    creds = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(creds) >= {"client_id", "client_secret", "scope"} and creds["scope"] == "admin"
    token = await grant(client, creds["client_id"], creds["client_secret"])
    assert token.status_code == 200
    made = await client.post("/v1/admin/clients", json={"kind": "authority"},
                             headers=bearer(token.json()["access_token"]))  # fmt: skip
    assert made.status_code == 201


async def test_cli_refuses_a_gate_without_tenant(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "clients", "create", "--kind", "gate", "--json"],
        cwd=REPO, env=server_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "tenant_required" in done.stdout + done.stderr


async def test_demo_seed_returns_working_admin_and_authority(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    part = await seed_demo(ctx, {})
    assert set(part) == {"admin", "authority"}
    for kind, creds in part.items():
        token = await grant(client, creds["client_id"], creds["client_secret"])
        assert token.status_code == 200
        assert token.json()["scope"] == (
            "admin" if kind == "admin" else "codes:verify status:write"
        )


async def test_concurrent_rotations_hand_out_exactly_one_working_secret(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    gate = await machine(client, ctx, "gate", "ven_1")
    responses = await asyncio.gather(
        *(client.post(f"/v1/admin/clients/{gate.client_id}/rotate", headers=admin.headers)
          for _ in range(6))
    )  # fmt: skip
    secrets = [r.json()["client_secret"] for r in responses if r.status_code == 200]
    assert secrets and all(r.status_code in (200, 409) for r in responses)
    working = [s for s in secrets if (await grant(client, gate.client_id, s)).status_code == 200]
    # Rotations that ran one after another each won in turn; only the last secret lives.
    assert len(working) == 1
