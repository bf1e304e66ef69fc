"""Across real server processes: the OTP limits and single use hold between workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.factories import unique_phone

pytestmark = [pytest.mark.e2e, pytest.mark.real_only]


async def test_otp_limit_and_single_use_hold_across_two_workers(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(workers=2)
    phone = unique_phone()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        sends = await asyncio.gather(
            *(http.post("/v1/auth/otp", json={"phone": phone}) for _ in range(12))
        )
        assert sorted(r.status_code for r in sends) == [200] + [429] * 11
        code = next(r.json()["debug_code"] for r in sends if r.status_code == 200)
        logins = await asyncio.gather(
            *(http.post("/v1/auth/login", json={"phone": phone, "otp": code}) for _ in range(12))
        )
        assert sorted(r.status_code for r in logins) == [200] + [401] * 11
        token = next(r.json()["access_token"] for r in logins if r.status_code == 200)
        for _ in range(6):  # whichever worker answers accepts the token
            me = await http.get("/v1/residents/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
        out = await http.post("/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert out.status_code == 200
        for _ in range(6):  # and every worker sees the logout
            me = await http.get("/v1/residents/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 401
    assert phone[3:] not in server.log()
