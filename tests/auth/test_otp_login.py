"""OTP login over HTTP: sending, rate limits, expiry, tries, single use, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import Account, AuditEvent
from tests.factories import assert_problem, bearer, sandbox, unique_phone


async def request_code(client: httpx.AsyncClient, ctx: AppContext, phone: str) -> str:
    response = await client.post("/v1/auth/otp", json={"phone": phone})
    assert response.status_code == 200, response.text
    code = sandbox(ctx).last_code(phone)
    assert code is not None
    return code


async def test_otp_is_six_digits_sent_by_sms_and_echoed_outside_production(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    response = await client.post("/v1/auth/otp", json={"phone": phone})
    assert response.status_code == 200
    body = response.json()
    message = sandbox(ctx).messages[-1]
    assert message.phone == phone and len(message.code) == 6 and message.code.isdigit()
    assert message.code in message.text
    assert body["debug_code"] == message.code
    assert body["expires_in"] == 300


async def test_login_returns_bearer_pair_and_creates_the_account_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    for _ in range(2):
        code = await request_code(client, ctx, phone)
        response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        assert body["refresh_token"] and body["access_token"].count(".") == 2
        me = await client.get("/v1/residents/me", headers=bearer(body["access_token"]))
        assert me.json()["phone"] == f"{phone[3:6]}****{phone[-4:]}"
        clock.advance(seconds=61)
    assert await Account.all().count() == 1


async def test_phone_spellings_reach_the_same_account(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    local = phone[3:]
    spaced = f"+86 {local[:3]} {local[3:7]} {local[7:]}"
    await client.post("/v1/auth/otp", json={"phone": local})
    code = sandbox(ctx).last_code(phone)
    response = await client.post("/v1/auth/login", json={"phone": spaced, "otp": code})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("phone", ["12345", "+1 415 555 0100", "23812345678"])
async def test_non_mainland_phone_is_422_phone_invalid(
    client: httpx.AsyncClient, phone: str
) -> None:
    assert_problem(await client.post("/v1/auth/otp", json={"phone": phone}), 422, "phone_invalid")
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": "123456"})
    assert_problem(response, 422, "phone_invalid")


async def test_wrong_otp_is_401_otp_invalid_and_audited(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong})
    assert_problem(response, 401, "otp_invalid")
    event = await AuditEvent.get(action="login_failed")
    assert event.detail == {"reason": "wrong"}
    assert phone[3:] not in event.actor and code not in str(event.detail)


async def test_login_without_any_code_sent_is_otp_invalid(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/login", json={"phone": unique_phone(), "otp": "000000"})
    assert_problem(response, 401, "otp_invalid")


async def test_otp_is_single_use(client: httpx.AsyncClient, ctx: AppContext) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    first = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert first.status_code == 200
    again = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert_problem(again, 401, "otp_invalid")


async def test_otp_expires_after_five_minutes(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    clock.advance(minutes=5)
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert_problem(response, 401, "otp_invalid")


async def test_otp_still_valid_just_before_five_minutes(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    clock.advance(minutes=4, seconds=59)
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert response.status_code == 200


async def test_five_wrong_tries_burn_the_code(client: httpx.AsyncClient, ctx: AppContext) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        response = await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong})
        assert_problem(response, 401, "otp_invalid")
    # Four wrong tries leave the code usable ...
    probe = await client.post("/v1/auth/otp", json={"phone": phone})
    assert probe.status_code == 429  # (and a new one cannot be requested within the minute)
    fifth = await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong})
    assert_problem(fifth, 401, "otp_invalid")
    # ... the fifth burns it: even the right code fails now.
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert_problem(response, 401, "otp_invalid")


async def test_four_wrong_tries_then_right_code_logs_in(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong})
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert response.status_code == 200


async def test_a_new_code_replaces_the_previous_one(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    old = await request_code(client, ctx, phone)
    clock.advance(seconds=61)
    new = await request_code(client, ctx, phone)
    if old != new:
        stale = await client.post("/v1/auth/login", json={"phone": phone, "otp": old})
        assert_problem(stale, 401, "otp_invalid")
    fresh = await client.post("/v1/auth/login", json={"phone": phone, "otp": new})
    assert fresh.status_code == 200


async def test_concurrent_logins_with_the_same_code_let_exactly_one_in(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    phone = unique_phone()
    code = await request_code(client, ctx, phone)
    responses = await asyncio.gather(
        *(client.post("/v1/auth/login", json={"phone": phone, "otp": code}) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19
    for r in responses:
        if r.status_code == 401:
            assert_problem(r, 401, "otp_invalid")
    assert await Account.all().count() == 1


# -- rate limits ----------------------------------------------------------------------


async def test_second_send_within_a_minute_is_429_with_retry_after(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    await request_code(client, ctx, phone)
    clock.advance(seconds=20)
    response = await client.post("/v1/auth/otp", json={"phone": phone})
    body = assert_problem(response, 429, "rate_limited")
    assert 35 <= int(response.headers["retry-after"]) <= 40
    assert body["retry_after"] == int(response.headers["retry-after"])
    clock.advance(seconds=41)
    assert (await client.post("/v1/auth/otp", json={"phone": phone})).status_code == 200


async def test_eleventh_send_within_an_hour_is_refused(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    phone = unique_phone()
    for _ in range(10):
        await request_code(client, ctx, phone)
        clock.advance(seconds=61)
    response = await client.post("/v1/auth/otp", json={"phone": phone})
    assert_problem(response, 429, "rate_limited")
    # The oldest send leaves the hour window after 60 - 10 * 61 / 60 minutes and change.
    assert int(response.headers["retry-after"]) <= 3600 - 10 * 61 + 61


@pytest.fixture
async def remote_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from a public address (not the loopback exemption)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_thirty_first_send_from_one_address_within_an_hour_is_refused(
    remote_client: httpx.AsyncClient,
) -> None:
    for _ in range(30):
        response = await remote_client.post("/v1/auth/otp", json={"phone": unique_phone()})
        assert response.status_code == 200, response.text
    response = await remote_client.post("/v1/auth/otp", json={"phone": unique_phone()})
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 3000


async def test_per_address_limit_does_not_touch_other_addresses(
    remote_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for _ in range(30):
        await remote_client.post("/v1/auth/otp", json={"phone": unique_phone()})
    assert (await client.post("/v1/auth/otp", json={"phone": unique_phone()})).status_code == 200


async def test_otp_rate_limit_holds_under_concurrent_sends(
    client: httpx.AsyncClient,
) -> None:
    phone = unique_phone()
    responses = await asyncio.gather(
        *(client.post("/v1/auth/otp", json={"phone": phone}) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] + [429] * 9
