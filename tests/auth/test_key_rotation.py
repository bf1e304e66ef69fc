"""Rotating the token signing key: new tokens use the new key, old ones keep verifying
until they expire. Each test gets its own key directory (rotation is global state)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from app.settings import Settings
from tests.conftest import REPO, server_env
from tests.factories import assert_problem, resident


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.with_(key_dir=tmp_path / "own-keys")


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def test_cli_rotation_switches_signing_and_old_tokens_still_verify(
    client: httpx.AsyncClient, ctx: AppContext, settings: Settings
) -> None:
    before = await resident(client, ctx)
    old_kid = kid_of(before.token)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "rotate", "--purpose", "tokens"],
        cwd=REPO, env=server_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ctx.keys.signing["tokens"].reload()
    after = await resident(client, ctx)
    assert kid_of(after.token) != old_kid
    for someone in (before, after):
        assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200


async def test_old_key_stops_verifying_once_its_tokens_have_expired(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    before = await resident(client, ctx)
    ctx.keys.signing["tokens"].rotate()
    clock.advance(minutes=14)
    assert (await client.get("/v1/residents/me", headers=before.headers)).status_code == 200
    clock.advance(minutes=2)
    response = await client.get("/v1/residents/me", headers=before.headers)
    assert_problem(response, 401, "unauthorized")
    assert response.json()["reason"] in ("unknown_key", "expired")
    # Refreshing works across the rotation and yields a token under the new key.
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": before.refresh_token})
    assert refreshed.status_code == 200
    assert kid_of(refreshed.json()["access_token"]) == ctx.keys.signing["tokens"].active().kid
