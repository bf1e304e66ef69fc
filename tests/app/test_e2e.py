"""End to end: the real `suishen serve` process, one worker and two, and the `make run`
start: fresh in an empty VAR_DIR within 60 s, again in under 5 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.domains import load_domains
from tests.conftest import REPO, ServerProcess, free_port
from tests.factories import assert_problem

pytestmark = pytest.mark.e2e


def test_real_server_answers_healthz_and_readyz(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    with httpx.Client(base_url=server.base_url) as http:
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]
        assert http.get("/readyz").json()["status"] == "ok"
        assert_problem(http.get("/nowhere"), 404, "not_found")
        assert http.get("/openapi.json").json()["openapi"] == "3.1.0"


@pytest.mark.real_only
def test_two_workers_serve_from_two_processes(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(workers=2)
    # Fresh connections spread over the workers as the kernel hands them out.
    ids = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _ in range(40):
            with httpx.Client(base_url=server.base_url) as http:
                ids.add(http.get("/healthz").headers["x-request-id"])
        pids = _pids_serving(server, ids)
        if len(pids) >= 2:
            break
    assert len(pids) == 2, f"served by {pids}"
    assert server.process.pid not in pids  # the supervisor only supervises


def _pids_serving(server: ServerProcess, request_ids: set[str]) -> set[int]:
    pids = set()
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("request_id") in request_ids:
            pids.add(entry["pid"])
    return pids


# -- the `make run` start ------------------------------------------------------------------


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[[], tuple[subprocess.Popen[bytes], float, str]]]:
    """`suishen serve --seed-demo` as `make run` starts it (dev defaults, nothing but
    VAR_DIR and PORT set); returns the process, seconds until /healthz answered, and URL."""
    var_dir = tmp_path / "var"
    port = free_port()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUISHEN_", "TEST_"))
        and k not in ("APP_ENV", "DATABASE_URL", "REDIS_URL", "KEY_DIR", "WORKERS", "LOG_FORMAT")
    }
    env = {**base, "VAR_DIR": str(var_dir), "PORT": str(port)}
    started: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], float, str]:
        url = f"http://127.0.0.1:{port}"
        log = (tmp_path / f"run-{len(started)}.log").open("wb")
        began = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--seed-demo"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        while time.monotonic() - began < 90:
            if process.poll() is not None:
                pytest.fail(f"suishen serve exited: {Path(log.name).read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return process, time.monotonic() - began, url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail("suishen serve did not answer /healthz within 90 s")

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=15)


def test_fresh_start_within_60s_and_second_start_within_5s(
    make_run: Callable[[], tuple[subprocess.Popen[bytes], float, str]], tmp_path: Path
) -> None:
    var_dir = tmp_path / "var"
    assert not var_dir.exists()
    process, first_s, url = make_run()
    assert first_s < 60, f"fresh start took {first_s:.1f} s"
    assert (var_dir / "suishen.db").exists()
    assert (var_dir / "keys" / "tokens" / "keyring.json").exists()
    assert httpx.get(f"{url}/readyz").json()["status"] == "ok"
    credentials_path = var_dir / "demo-credentials.json"
    seeding = [d.name for d in load_domains() if d.seed_demo is not None]
    if seeding:
        credentials = json.loads(credentials_path.read_text())
        assert credentials["_seeded"] == seeding
        assert credentials_path.stat().st_mode & 0o777 == 0o600
    _stop(process)
    before = credentials_path.read_bytes() if seeding else None

    process, second_s, url = make_run()
    assert second_s < 5, f"second start took {second_s:.1f} s"
    assert httpx.get(f"{url}/healthz").status_code == 200
    if seeding:
        assert credentials_path.read_bytes() == before  # reused, not seeded again
    _stop(process)
    print(f"make run: fresh start {first_s:.2f} s, second start {second_s:.2f} s")
