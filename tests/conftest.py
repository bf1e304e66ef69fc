"""Fixtures every test builds on; see tests/README.md for how to use them.

The `backend` fixture runs a test once on SQLite + the embedded store and, when
TEST_DATABASE_URL and TEST_REDIS_URL are set (CI sets both), again on PostgreSQL +
Redis. Tests marked `cluster` run a third time on PostgreSQL + a Redis Cluster when
TEST_REDIS_CLUSTER_URL names one of its nodes (CI starts one with .ci/redis-cluster).
Every test starts from an empty, fully migrated database and an empty store.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.cluster

from app.clock import FrozenClock
from app.context import AppContext
from app.db import apply_migrations, close_db, normalise_url, open_db
from app.main import create_app
from app.settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or None
TEST_REDIS_CLUSTER_URL = os.environ.get("TEST_REDIS_CLUSTER_URL") or None
if bool(TEST_DATABASE_URL) != bool(TEST_REDIS_URL):
    raise RuntimeError("set both TEST_DATABASE_URL and TEST_REDIS_URL, or neither")
if TEST_REDIS_CLUSTER_URL and not TEST_DATABASE_URL:
    raise RuntimeError("TEST_REDIS_CLUSTER_URL needs TEST_DATABASE_URL and TEST_REDIS_URL too")

BACKENDS = ["embedded"]
if TEST_DATABASE_URL:
    BACKENDS.append("real")
if TEST_REDIS_CLUSTER_URL:
    BACKENDS.append("cluster")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Backend:
    """Where a test's data lives: `embedded` (SQLite + in-process store), `real`
    (PostgreSQL + Redis) or `cluster` (PostgreSQL + Redis Cluster)."""

    name: str
    database_url: str
    redis_url: str | None
    redis_cluster: bool = False

    @property
    def is_real(self) -> bool:
        return self.name in ("real", "cluster")


# -- database templates, prepared once per session -------------------------------


async def _migrate(url: str) -> None:
    settings = Settings(app_env="test", database_url=url)
    db = await open_db(settings)
    try:
        await apply_migrations(db)
    finally:
        await close_db(db)


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(normalise_url(url).replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def _truncate_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(normalise_url(url).replace("postgres://", "postgresql://", 1))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'tortoise_migrations'"
            )
        ]
        if tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    assert TEST_DATABASE_URL is not None
    asyncio.run(_reset_postgres(TEST_DATABASE_URL))
    asyncio.run(_migrate(TEST_DATABASE_URL))
    return TEST_DATABASE_URL


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        template: Path = request.getfixturevalue("sqlite_template")
        db_path = tmp_path / "suishen.db"
        shutil.copyfile(template, db_path)
        yield Backend("embedded", f"sqlite://{db_path}", None)
        return
    url = request.getfixturevalue("postgres_ready")
    asyncio.run(_truncate_postgres(url))
    if request.param == "cluster":
        assert TEST_REDIS_CLUSTER_URL is not None
        flush_cluster(TEST_REDIS_CLUSTER_URL)
        yield Backend("cluster", url, TEST_REDIS_CLUSTER_URL, redis_cluster=True)
        return
    assert TEST_REDIS_URL is not None
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    yield Backend("real", url, TEST_REDIS_URL)


def flush_cluster(url: str) -> None:
    """Empty every master of the Redis Cluster `url` names a node of."""
    with redis.cluster.RedisCluster.from_url(url) as cluster:
        cluster.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by the session: generating keys per test would only cost time.
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def clock() -> FrozenClock:
    """An injectable clock starting at the real current time (so TTLs kept by Redis in
    real time and timestamps computed from the clock agree) that only moves when told."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(backend: Backend, key_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        app_env="test",
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        redis_cluster=backend.redis_cluster,
        var_dir=tmp_path,
        key_dir=key_dir,
        sms_backend="sandbox",
        kv_prefix="suishen-test",
        embedded_worker=False,
    )


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def ctx(app: Any) -> AppContext:
    context: AppContext = app.state.ctx
    return context


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- real server processes ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "VAR_DIR": str(settings.var_dir),
        "KEY_DIR": str(settings.key_dir),
        "SMS_BACKEND": settings.sms_backend,
        "KV_PREFIX": settings.kv_prefix,
        "LOG_FORMAT": "json",
        "EMBEDDED_WORKER": "0",
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.redis_cluster:
        env["SUISHEN_REDIS_CLUSTER"] = "1"
    env.update(overrides)
    return env


@pytest.fixture
def start_server(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `suishen serve` as a real process on a free port; stopped after the test."""
    started: list[ServerProcess] = []

    def start(workers: int = 1, **env: str) -> ServerProcess:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env=server_env(settings, **env),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready:\n{server.log()}")

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster: also runs on PostgreSQL + Redis Cluster (the `cluster` backend) when "
        "TEST_REDIS_CLUSTER_URL is set",
    )
    config.addinivalue_line(
        "markers", "cluster_only: runs only on the `cluster` backend (deselected elsewhere)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.real_only` tests need PostgreSQL + Redis (e.g. two worker processes,
    which the embedded store cannot serve): their embedded variant is deselected, not
    skipped, and CI always runs the real one. The `cluster` variant is kept only for
    tests marked `@pytest.mark.cluster` (the key-value, replay and idempotency tests and
    one scan and one settlement end to end); the rest are deselected there."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on = callspec.params.get("backend") if callspec is not None else None
        dropped = (
            (item.get_closest_marker("real_only") and on == "embedded")
            or (on == "cluster" and not item.get_closest_marker("cluster"))
            or (on != "cluster" and item.get_closest_marker("cluster_only"))
        )
        (drop if dropped else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
