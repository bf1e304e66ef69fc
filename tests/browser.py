"""What every browser-test package shares: Debian's Chromium and its flags, and ONE real,
seeded server process per package (`seeded_server`), with the demo credentials and a
machine-token helper. Chromium missing is a failure, never a skip: `.ci/run` installs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Playwright

from tests.conftest import REPO, free_port

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which
# this closed network refuses (and hangs on); see docs/app.md.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class SeededServer:
    """A `suishen serve` process with the demo data, for one test package."""

    base_url: str
    var_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def credentials(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.var_dir / "demo-credentials.json").read_text())
        return loaded

    def machine_token(self, client: dict[str, str]) -> str:
        answer = httpx.post(
            f"{self.base_url}/v1/auth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token


def dev_server_env(var_dir: Path, **knobs: str) -> dict[str, str]:
    """A dev server in `var_dir` on SQLite and the embedded store, console SMS, JSON logs,
    no embedded worker; `knobs` add or override variables (SUISHEN_* limits, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUISHEN_", "REDIS_"))}
    env.update(
        {
            "APP_ENV": "dev",
            "VAR_DIR": str(var_dir),
            "KEY_DIR": str(var_dir / "keys"),
            "DATABASE_URL": f"sqlite://{var_dir}/suishen.db",
            "SMS_BACKEND": "console",
            "LOG_FORMAT": "json",
            "EMBEDDED_WORKER": "0",
            **knobs,
        }
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@contextmanager
def seeded_server(var_dir: Path, env: dict[str, str], *, migrate: bool) -> Iterator[SeededServer]:
    """Migrate (when asked), seed the demo data, serve on a free port until /readyz says
    yes; stopped when the block ends."""
    if migrate:
        run_cli(env, "migrate")
    run_cli(env, "seed-demo")
    port = free_port()
    log_path = var_dir / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    running = SeededServer(f"http://127.0.0.1:{port}", var_dir, env, process, log_path)
    try:
        _wait_ready(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(server: SeededServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log_path.read_text()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not become ready:\n{server.log_path.read_text()}")
        time.sleep(0.1)


def launch_chromium(playwright: Playwright, args: Sequence[str] = CHROMIUM_ARGS) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run does it)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(args))
