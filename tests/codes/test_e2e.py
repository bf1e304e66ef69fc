"""Across real server processes: the replay rule holds between two uvicorn workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from app.context import AppContext
from tests.conftest import ServerProcess
from tests.factories import code_of, machine, resident

pytestmark = [pytest.mark.e2e, pytest.mark.real_only, pytest.mark.cluster]


def pids_serving(server: ServerProcess, route: str) -> set[int]:
    pids = set()
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("route") == route and "pid" in entry:
            pids.add(int(entry["pid"]))
    return pids


async def test_replay_rule_holds_across_two_worker_processes(
    client: httpx.AsyncClient,
    ctx: AppContext,
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(workers=2)
    who = await resident(client, ctx)
    gates = [await machine(client, ctx, "gate", f"venue-{i}") for i in range(8)]
    # Many connections at once: the kernel spreads them over both workers.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20, limits=limits) as http:
        for _ in range(6):
            code = await code_of(http, who)
            responses = await asyncio.gather(
                *(
                    http.post("/v1/codes/verify", json={"code": code}, headers=g.headers)
                    for g in gates
                    for _ in range(4)
                )
            )
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            verdicts = [r.json() for r in responses]
            winners = {i // 4 for i, v in enumerate(verdicts) if v["valid"]}
            assert len(winners) == 1, verdicts
            assert all(v["reason"] == "code_replayed" for v in verdicts if not v["valid"])
            # The winning gate re-scanning is admitted again, by whichever worker answers.
            winner = gates[winners.pop()]
            for _ in range(4):
                again = await http.post(
                    "/v1/codes/verify", json={"code": code}, headers=winner.headers
                )
                assert again.json()["valid"] is True
    assert len(pids_serving(server, "/v1/codes/verify")) == 2
