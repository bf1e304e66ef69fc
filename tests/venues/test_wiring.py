"""The demo venue, the worker jobs and the purge command as the platform wires them."""

from __future__ import annotations

import httpx

from app.context import AppContext
from app.worker import run_job_once
from tests.factories import assert_problem, code_of, resident
from venues.wiring import DOMAIN


async def test_seed_demo_makes_a_venue_with_operator_gates_and_todays_slots(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    assert DOMAIN.seed_demo is not None
    part = await DOMAIN.seed_demo(ctx, {})
    venue = part["venue"]
    assert [g["direction"] for g in venue["gates"]] == ["in", "out"]
    tokens = []
    for creds in (venue["operator"], *venue["gates"]):
        got = await client.post(
            "/v1/auth/token",
            json={"grant_type": "client_credentials", "client_id": creds["client_id"],
                  "client_secret": creds["client_secret"]},
        )  # fmt: skip
        assert got.status_code == 200, got.text
        tokens.append({"Authorization": f"Bearer {got.json()['access_token']}"})
    operator, gate_in, gate_out = tokens
    occupancy = await client.get(f"/v1/venues/{venue['id']}/occupancy", headers=operator)
    assert occupancy.status_code == 200
    code = await code_of(client, await resident(client, ctx))
    entered = await client.post(
        "/v1/gates/scan", json={"scan_id": "demo-1", "code": code, "direction": "in"},
        headers=gate_in,
    )  # fmt: skip
    assert entered.json()["decision"] == "admit"
    wrong_way = await client.post(
        "/v1/gates/scan", json={"scan_id": "demo-2", "code": code, "direction": "in"},
        headers=gate_out,
    )  # fmt: skip
    assert_problem(wrong_way, 422, "direction_not_supported")


async def test_worker_jobs_run_through_the_worker_lease(ctx: AppContext) -> None:
    names = {job.name: job for job in DOMAIN.jobs}
    assert set(names) == {"venues-no-shows", "venues-purge"}
    for job in names.values():
        assert await run_job_once(ctx, job) == 0
    assert [c.name for c in DOMAIN.commands] == ["purge"]
