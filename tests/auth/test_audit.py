"""The audit trail records every security event with actor, target, time and request
id, and never a secret value."""

from __future__ import annotations

import httpx

from app.context import AppContext
from auth.models import AuditEvent
from tests.factories import add_dependent, bearer, machine, resident, sandbox, unique_phone


async def test_a_day_of_security_events_is_recorded_without_secrets(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    await client.post("/v1/auth/otp", json={"phone": phone})
    code = sandbox(ctx).last_code(phone)
    assert code is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    marked = {"X-Request-ID": "req-fail-1"}
    await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong}, headers=marked)
    login = (await client.post("/v1/auth/login", json={"phone": phone, "otp": code})).json()
    someone = await resident(client, ctx, name="钱七七")
    await add_dependent(client, someone, name="钱小七")
    refreshed = (
        await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    ).json()
    await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    admin = await machine(client, ctx, "admin")
    gate = await machine(client, ctx, "gate", "ven_1")
    await client.post(f"/v1/admin/clients/{gate.client_id}/rotate", headers=admin.headers)
    await client.post(f"/v1/admin/clients/{gate.client_id}/disable", headers=admin.headers)
    await client.post("/v1/admin/clients", json={"kind": "admin"}, headers=bearer(someone.token))
    await client.post("/v1/auth/logout", headers=someone.headers)

    events = await AuditEvent.all().order_by("id")
    actions = {e.action for e in events}
    assert {
        "login", "login_failed", "identity_bound", "dependent_added", "refresh_reused",
        "client_created", "client_rotated", "client_disabled", "token_rejected", "logout",
    } <= actions  # fmt: skip
    assert all(e.at is not None and e.actor for e in events)
    failed = next(e for e in events if e.action == "login_failed")
    assert failed.request_id == "req-fail-1"
    secrets = [
        phone, phone[3:], code, login["access_token"], login["refresh_token"],
        refreshed["refresh_token"], someone.token, someone.refresh_token, gate.client_secret,
        admin.client_secret, "钱七七", "钱小七", str(someone.id_number),
    ]  # fmt: skip
    for event in events:
        dumped = str(event.__dict__)
        leaked = [s for s in secrets if s and s in dumped]
        assert not leaked, (event.action, leaked)
