"""Hospitals and credit accounts over HTTP: creation, enrolment, the credit summary."""

from __future__ import annotations

import httpx

from app.context import AppContext
from tests.factories import assert_problem, machine, resident
from tests.payments.helpers import hospital, patient


async def test_admin_creates_a_hospital_whose_client_can_get_a_token(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    created = await hospital(client, ctx)
    assert created.id.startswith("hosp_")
    statement = await client.get(
        "/v1/hospitals/me/statements", params={"date": "2026-01-15"}, headers=created.headers
    )
    assert statement.status_code == 200, statement.text
    assert statement.json()["hospital_id"] == created.id


async def test_only_an_admin_creates_hospitals(client: httpx.AsyncClient, ctx: AppContext) -> None:
    gate = await machine(client, ctx, "gate", "venue-1")
    response = await client.post("/v1/hospitals", json={"name": "x"}, headers=gate.headers)
    assert_problem(response, 403, "forbidden")
    anonymous = await client.post("/v1/hospitals", json={"name": "x"})
    assert anonymous.status_code == 401


async def test_enrolment_opens_a_credit_line_of_three_thousand_yuan(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx)
    enrolled = await client.post(
        "/v1/credit/enroll", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert body["limit_fen"] == 300_000
    assert body["available_fen"] == 300_000
    assert body["status"] == "active"
    me = await client.get("/v1/credit/me", headers=person.headers)
    assert me.json()["available_fen"] == 300_000
    assert me.json()["open_encounters"] == [] and me.json()["unpaid_bills"] == []


async def test_second_enrolment_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    person = await patient(client, ctx)
    again = await client.post(
        "/v1/credit/enroll", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert_problem(again, 409, "already_enrolled")


async def test_unknown_payment_method_cannot_be_bound(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx)
    response = await client.post(
        "/v1/credit/enroll", json={"payment_method": "pm_stolen_card"}, headers=person.headers
    )
    assert_problem(response, 422, "payment_method_invalid")


async def test_enrolment_needs_identity(client: httpx.AsyncClient, ctx: AppContext) -> None:
    person = await resident(client, ctx, identity=False)
    response = await client.post(
        "/v1/credit/enroll", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert_problem(response, 409, "identity_required")


async def test_credit_summary_of_a_resident_not_enrolled_is_404(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx)
    response = await client.get("/v1/credit/me", headers=person.headers)
    assert_problem(response, 404, "not_enrolled")


async def test_webhook_registration_returns_a_stable_secret_until_rotated(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    first = await client.put(
        "/v1/hospitals/me/webhook", json={"url": "https://his.example/hook"}, headers=where.headers
    )
    assert first.status_code == 200, first.text
    again = await client.put(
        "/v1/hospitals/me/webhook", json={"url": "https://his.example/hook2"}, headers=where.headers
    )
    assert again.json()["secret"] == first.json()["secret"]
    assert again.json()["url"] == "https://his.example/hook2"
    rotated = await client.put(
        "/v1/hospitals/me/webhook",
        json={"url": "https://his.example/hook2", "rotate_secret": True},
        headers=where.headers,
    )
    assert rotated.json()["secret"] != first.json()["secret"]
    bad = await client.put(
        "/v1/hospitals/me/webhook", json={"url": "not a url"}, headers=where.headers
    )
    assert bad.status_code == 422


async def test_resident_cannot_use_hospital_endpoints(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await patient(client, ctx)
    response = await client.post(
        "/v1/encounters",
        json={"code": "SC1:whatever", "department": "内科"},
        headers={**person.headers, "Idempotency-Key": "k1"},
    )
    assert response.status_code == 403
