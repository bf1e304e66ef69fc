"""Faults: PostgreSQL and Redis cut, black-holed and restored behind a TCP relay under
load, and a process killed mid-request. The service answers 503 dependency_unavailable
within a bounded time (never 500, never a hang), /readyz within its 1 s, nothing fails
once the dependency is back, and a retried Idempotency-Key is answered within seconds
of a crash. The measured figures are printed (`pytest -s`) for the closing note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.exceptions import IntegrityError, OperationalError

from app.clock import SystemClock
from app.context import AppContext, app_context
from app.db import tortoise_config, unavailable_error
from app.domain import Domain
from app.domains import load_domains
from app.http import endpoint, read_json
from app.idempotency import LEASE, StoredResponse, idempotent_json
from app.main import create_app
from app.settings import Settings
from tests.conftest import REPO, ServerProcess
from tests.factories import Resident, resident

# The test servers' database timeouts: 503 must come within about their sum.
CONNECT_S, STATEMENT_S = 1.0, 1.0
CONCURRENCY = 8

# -- the relay ---------------------------------------------------------------------------


class Relay:
    """`pass` relays bytes; `blackhole` accepts and reads but never answers or forwards
    (a host that vanished without a reset); `down` resets every connection, old and new
    (a crashed server, a restarted proxy). `restore()` goes back to `pass`; connections
    that lived through a black hole are reset then, as their peer has long given up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- control, from any thread ----------------------------------------------------

    def start(self) -> Relay:
        self._thread.start()
        self._call(self._start())
        return self

    def cut(self) -> None:
        self._call(self._set("down"))

    def blackhole(self) -> None:
        self._call(self._set("blackhole"))

    def restore(self) -> None:
        self._call(self._set("pass"))

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the relay's."""
        scheme, rest = url.split("://", 1)
        userinfo, _, hostpath = rest.rpartition("@")
        path = hostpath[hostpath.find("/") :] if "/" in hostpath else ""
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}127.0.0.1:{self.port}{path}"

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- inside the relay's loop -----------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set(self, mode: str) -> None:
        previous, self.mode = self.mode, mode
        if mode == "down" or (mode == "pass" and previous == "blackhole"):
            self._reset_all()

    def _reset_all(self) -> None:
        for writer in list(self._conns):
            with contextlib.suppress(Exception):
                writer.transport.abort()  # RST, not a polite FIN
        self._conns.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.transport.abort()
            return
        self._conns.add(writer)
        if self.mode == "blackhole":
            self._spawn(self._swallow(reader))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._conns.discard(writer)
            writer.transport.abort()
            return
        self._conns.add(up_writer)
        self._spawn(self._pipe(reader, up_writer, writer))
        self._spawn(self._pipe(up_reader, writer, up_writer))

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # swallowed: the peer waits for an answer that never comes
                writer.write(data)
                await writer.drain()
        except Exception:  # noqa: S110 (a reset connection ends its pipe)
            pass
        finally:
            for w in (writer, other):
                self._conns.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()


# -- load ------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def slowest_s(self) -> float:
        return max(self.latencies, default=0.0)

    @property
    def median_s(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2] if ordered else 0.0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def failed(self) -> int:
        return self.total - self.statuses[200]


async def drive(
    http: httpx.AsyncClient,
    person: Resident,
    n: int,
    tally: Tally,
    stop: asyncio.Event | None = None,
    concurrency: int = CONCURRENCY,
) -> None:
    """`n` requests (or until `stop`) from `concurrency` callers, alternating a profile read
    (token check: Redis GET, then PostgreSQL) and a code (Redis script, PostgreSQL)."""
    paths = ["/v1/residents/me", "/v1/codes/me"]
    counter = iter(range(n))

    async def caller() -> None:
        for i in counter:
            if stop is not None and stop.is_set():
                return
            started = time.perf_counter()
            try:
                response = await http.get(paths[i % 2], headers=person.headers)
                status = response.status_code
                if status != 200:
                    tally.codes[response.json().get("code", "?")] += 1
            except httpx.HTTPError as exc:
                status = 0
                tally.codes[type(exc).__name__] += 1
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))


@dataclass
class Rig:
    """A real server whose PostgreSQL and Redis sit behind relays, a client to it and a
    logged-in resident to drive it with."""

    db: Relay
    kv: Relay
    server: ServerProcess
    http: httpx.AsyncClient
    person: Resident

    async def drive(
        self, n: int, stop: asyncio.Event | None = None, concurrency: int = CONCURRENCY
    ) -> Tally:
        tally = Tally()
        await drive(self.http, self.person, n, tally, stop, concurrency)
        return tally


@pytest.fixture
async def rig(
    client: httpx.AsyncClient,
    ctx: AppContext,
    settings: Settings,
    start_server: Callable[..., ServerProcess],
) -> AsyncIterator[Rig]:
    assert settings.redis_url is not None
    person = await resident(client, ctx)
    pg = httpx.URL(settings.database_url.replace("postgres://", "http://", 1))
    rd = httpx.URL(settings.redis_url.replace("redis://", "http://", 1))
    db = Relay(pg.host, pg.port or 5432).start()
    kv = Relay(rd.host, rd.port or 6379).start()
    try:
        server = start_server(
            DATABASE_URL=db.url(settings.database_url),
            REDIS_URL=kv.url(settings.redis_url),
            DB_CONNECT_TIMEOUT_S=str(CONNECT_S),
            DB_STATEMENT_TIMEOUT_S=str(STATEMENT_S),
        )
        # The client's own timeout is far above the service's bound: a hang shows as slow.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            ready = Rig(db, kv, server, http, person)
            # A burst leaves many connections in the pools, for the faults to break.
            warm = await ready.drive(160, concurrency=32)
            assert warm.failed() == 0, warm
            yield ready
    finally:
        db.close()
        kv.close()


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.real_only
async def test_postgres_black_holed_answers_503_fast_and_recovers(rig: Rig) -> None:
    rig.db.blackhole()
    started = time.perf_counter()
    down = await rig.drive(64)
    down_s = time.perf_counter() - started
    ready_started = time.perf_counter()
    ready = await rig.http.get("/readyz")
    ready_s = time.perf_counter() - ready_started

    rig.db.restore()
    recovered_at = time.perf_counter()
    first_ok = float("inf")
    while first_ok == float("inf") and time.perf_counter() - recovered_at < 15:
        if (await rig.drive(CONCURRENCY)).failed() == 0:
            first_ok = time.perf_counter() - recovered_at
    after = await rig.drive(200)

    print(
        f"\n[faults] PostgreSQL black-holed: {down.total} requests in {down_s:.1f}s, "
        f"statuses {dict(down.statuses)}, time to 503 median {down.median_s:.2f}s, "
        f"slowest {down.slowest_s:.2f}s "
        f"(timeouts connect {CONNECT_S}s, statement {STATEMENT_S}s); "
        f"/readyz {ready.status_code} in {ready_s:.2f}s {ready.json().get('checks')}; "
        f"all answering again {first_ok:.2f}s after restore, then "
        f"{after.failed()} of {after.total} failed"
    )
    assert 500 not in down.statuses and 0 not in down.statuses, down
    assert set(down.statuses) <= {200, 503}, down
    assert down.statuses[503] > 0 and set(down.codes) == {"dependency_unavailable"}, down
    # The bound: a pooled connection within CONNECT_S, a statement given up STATEMENT_S
    # + 0.5 s later, and some slack for two shared cores.
    assert down.slowest_s < CONNECT_S + STATEMENT_S + 1.0, down
    assert ready.status_code == 503 and ready_s <= 1.0, (ready_s, ready.text)
    assert ready.json()["checks"]["database"].startswith("down")
    assert ready.json()["checks"]["kv"] == "ok"
    assert first_ok < 15
    assert after.failed() == 0, after
    assert "internal_error" not in rig.server.log()


# -- Redis -------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.real_only
async def test_after_a_redis_reset_no_request_fails(rig: Rig) -> None:
    # The cut resets every pooled connection, most of them idle, as a Redis restart
    # would, while light load runs through the outage.
    stop = asyncio.Event()
    load = asyncio.create_task(rig.drive(10_000, stop, concurrency=2))
    await asyncio.sleep(0.3)
    rig.kv.cut()
    await asyncio.sleep(1.0)
    rig.kv.restore()
    await asyncio.sleep(0.2)
    stop.set()
    during = await load
    after = await rig.drive(300)

    print(
        f"\n[faults] Redis reset mid-load: {during.total} requests, statuses "
        f"{dict(during.statuses)}, slowest {during.slowest_s:.2f}s; after Redis is back "
        f"{after.failed()} of {after.total} failed"
    )
    assert 500 not in during.statuses and 0 not in during.statuses, during
    assert set(during.codes) <= {"dependency_unavailable"}, during
    assert during.slowest_s < 2.0, during
    assert after.failed() == 0, after
    assert "internal_error" not in rig.server.log()


# -- what counts as the database being unavailable -------------------------------------


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (TimeoutError(), True),
        (ConnectionRefusedError(111, "refused"), True),
        (OSError("Multiple exceptions: [Errno 111] ..."), True),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), True),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), True),
        (_raised_from(OperationalError("wrapped"), TimeoutError()), True),
        (IntegrityError("duplicate key"), False),
        (_raised_from(IntegrityError("dup"), asyncpg.UniqueViolationError("dup")), False),
        (_raised_from(OperationalError("bad"), asyncpg.exceptions.DataError("bad")), False),
        (FileNotFoundError("keys"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_outages_count_as_the_database_unavailable(
    error: BaseException, unavailable: bool
) -> None:
    assert unavailable_error(error) is unavailable


def test_postgres_connections_carry_the_timeouts() -> None:
    config = tortoise_config(
        "postgres://u@db:5432/x", connect_timeout_s=2.0, statement_timeout_s=4.0
    )
    credentials = config["connections"]["default"]["credentials"]
    assert credentials["timeout"] == 2.0
    assert credentials["command_timeout"] == 4.5
    assert credentials["server_settings"]["statement_timeout"] == "4000"
    assert credentials["acquire_timeout"] == 2.0


@pytest.mark.real_only
async def test_statement_timeout_is_set_on_every_connection(app: Any) -> None:
    _, rows = await app.state.db.db("default").execute_query("SHOW statement_timeout")
    assert rows[0]["statement_timeout"] == "5s"


@pytest.mark.real_only
async def test_a_pooled_connection_comes_back_clean_with_one_round_trip_per_statement(
    app: Any,
) -> None:
    pool = app.state.db.db("default")._pool
    sent: list[str] = []
    async with pool.acquire() as connection:
        raw = connection._con
        raw.add_query_logger(lambda record: sent.append(record.query))
        await connection.execute("CREATE TEMP TABLE IF NOT EXISTS pool_probe (n int)")
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO pool_probe VALUES (1)")
        # Given back with its transaction open (a request cancelled mid-way).
    async with pool.acquire() as again:
        assert again._con is raw  # the pool's one idle connection
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT count(*) FROM pool_probe") == 0
    # Rolled back on the way back, and no RESET ALL round trip after any statement.
    assert [q for q in sent if "RESET" in q or "UNLISTEN" in q] == []
    assert "ROLLBACK" in sent


# -- a crash mid-request -------------------------------------------------------------------


class Hang(BaseModel):
    amount_fen: int


@endpoint(summary="an idempotent action that hangs in the process told to", body=Hang)
async def hang(request: Request) -> Response:
    body = await read_json(request, Hang)

    async def action() -> StoredResponse:
        if request.app.state.hang:
            print("running", flush=True)
            await asyncio.Event().wait()
        return StoredResponse(201, {"applied": body.amount_fen, "pid": os.getpid()})

    return await idempotent_json(request, app_context(request), owner="crash-test", action=action)


PROBE = Domain(name="probe", routes=[Route("/v1/probe/hang", hang, methods=["POST"])])
KEY = {"Idempotency-Key": "crash-1"}


def probe_app(settings: Settings, *, hangs: bool) -> Any:
    app = create_app(settings, clock=SystemClock(), domains=[*load_domains(), PROBE])
    app.state.hang = hangs
    return app


async def _child(settings: Settings) -> None:
    """The process that crashes: claims the key, starts the action, hangs until killed."""
    app = probe_app(settings, hangs=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await http.post("/v1/probe/hang", json={"amount_fen": 7}, headers=KEY)


@pytest.mark.e2e
async def test_retry_after_a_crash_mid_request_is_answered_within_seconds(
    settings: Settings,
) -> None:
    env = {
        **os.environ,
        "FAULTS_CHILD_DATABASE_URL": settings.database_url,
        "FAULTS_CHILD_REDIS_URL": settings.redis_url or "",
        "FAULTS_CHILD_KEY_DIR": str(settings.key_dir),
        "FAULTS_CHILD_VAR_DIR": str(settings.var_dir),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.app.test_faults"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.strip() == b"running", line + child.stdout.read()
    finally:
        child.send_signal(signal.SIGKILL)  # no cleanup runs: the key stays in_progress
        child.wait()
    crashed = time.perf_counter()

    app = probe_app(settings, hangs=False)
    statuses: Counter[int] = Counter()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            while time.perf_counter() - crashed < 30:
                retry = await http.post("/v1/probe/hang", json={"amount_fen": 7}, headers=KEY)
                statuses[retry.status_code] += 1
                if retry.status_code != 409:
                    break
                assert retry.json()["code"] == "request_in_progress"
                await asyncio.sleep(0.25)
    answered_s = time.perf_counter() - crashed
    print(
        f"\n[faults] retry after a crash mid-request answered {retry.status_code} "
        f"{answered_s:.1f}s after the kill (lease {LEASE.total_seconds():.0f}s), "
        f"statuses {dict(statuses)}"
    )
    assert retry.status_code == 201, retry.text
    assert retry.json()["pid"] == os.getpid()
    assert answered_s < LEASE.total_seconds() + 2


if __name__ == "__main__":
    asyncio.run(
        _child(
            Settings(
                app_env="test",
                database_url=os.environ["FAULTS_CHILD_DATABASE_URL"],
                redis_url=os.environ["FAULTS_CHILD_REDIS_URL"] or None,
                key_dir=__import__("pathlib").Path(os.environ["FAULTS_CHILD_KEY_DIR"]),
                var_dir=__import__("pathlib").Path(os.environ["FAULTS_CHILD_VAR_DIR"]),
                sms_backend="sandbox",
                kv_prefix="suishen-test",
                embedded_worker=False,
            )
        )
    )
