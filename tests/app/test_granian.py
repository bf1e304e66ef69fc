"""`suishen serve --server granian` (or SUISHEN_SERVER=granian): the same application on
granian's HTTP server, one worker and two, JSON log lines only, a clean stop. Every test
that starts a real server runs on granian too with `SUISHEN_SERVER=granian` in the
environment."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from tests.app.test_e2e import _pids_serving
from tests.conftest import ServerProcess
from tests.factories import assert_problem

pytestmark = pytest.mark.e2e


def test_granian_serves_the_app_and_logs_json_lines_only(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUISHEN_SERVER="granian")
    with httpx.Client(base_url=server.base_url) as http:
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert health.headers["server"] == "granian"
        assert http.get("/readyz").json()["status"] == "ok"
        assert_problem(http.get("/nowhere"), 404, "not_found")
        rid = health.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while rid not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    access = [e for e in lines if e.get("request_id") == rid]
    assert access and access[0]["route"] == "/healthz" and access[0]["status"] == 200
    assert any(e["logger"].startswith("_granian") for e in lines)  # granian's own, as JSON


@pytest.mark.real_only
def test_granian_two_workers_serve_from_two_processes(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(workers=2, SUISHEN_SERVER="granian")
    ids = set()
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        for _ in range(40):
            with httpx.Client(base_url=server.base_url) as http:
                ids.add(http.get("/healthz").headers["x-request-id"])
        time.sleep(0.2)  # access lines are written once per loop iteration
        pids = _pids_serving(server, ids)
    assert len(pids) == 2, f"served by {pids}"
    assert server.process.pid not in pids


def test_granian_stops_cleanly_on_sigterm(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUISHEN_SERVER="granian")
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/healthz", timeout=2)
