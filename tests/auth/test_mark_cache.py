"""The per-process cache of revocation marks: kept only while the invalidation
subscription is live, forgotten by the writer at once and by every other process when
its message arrives, and read from the store again whenever the subscription is down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.clock import FrozenClock
from app.context import AppContext
from app.errors import Unauthorized
from app.kv import EmbeddedStore, Keyspace, KeyValueStore, RedisStore, create_store
from app.main import create_app
from app.settings import Settings
from auth import store
from auth import wiring as auth_wiring
from auth.config import AuthRuntime, MarkCache
from auth.sessions import authenticate
from tests.conftest import Backend
from tests.factories import Resident, assert_problem, machine, resident

# -- the cache itself --------------------------------------------------------------


class Ticks:
    """A monotonic clock that moves only when told (the cache's `now`)."""

    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


def live_cache(ticks: Ticks) -> MarkCache:
    marks = MarkCache(ttl_s=5.0, now=ticks)
    marks.set_live(True)
    return marks


def test_a_kept_mark_and_a_kept_absence_last_the_ttl_only() -> None:
    ticks = Ticks()
    marks = live_cache(ticks)
    marks.keep("k:revoked", b"1", marks.epoch)
    marks.keep("k:fine", None, marks.epoch)
    assert (marks.cached("k:revoked"), marks.cached("k:fine")) == (b"1", b"")
    ticks.at += 4.9
    assert marks.cached("k:fine") == b""
    ticks.at += 0.2
    assert (marks.cached("k:revoked"), marks.cached("k:fine")) == (None, None)


def test_old_entries_are_swept_as_new_ones_come() -> None:
    ticks = Ticks()
    marks = live_cache(ticks)
    for n in range(100):
        marks.keep(f"k:{n}", None, marks.epoch)
    ticks.at += 6
    marks.keep("k:new", None, marks.epoch)
    assert len(marks) == 1


def test_a_read_begun_before_an_invalidation_is_not_kept() -> None:
    marks = live_cache(Ticks())
    epoch = marks.epoch  # a read starts and finds no mark ...
    marks.drop("k:family")  # ... the mark is written and announced meanwhile
    marks.keep("k:family", None, epoch)
    assert marks.cached("k:family") is None


def test_nothing_is_kept_or_served_while_the_subscription_is_down() -> None:
    marks = live_cache(Ticks())
    marks.keep("k:a", None, marks.epoch)
    marks.set_live(False)
    assert marks.cached("k:a") is None
    marks.keep("k:b", None, marks.epoch)
    assert len(marks) == 0
    marks.set_live(True)  # subscribed again: starts empty
    assert marks.cached("k:a") is None and marks.subscriptions == 2


# -- in the application ------------------------------------------------------------


class CountingEmbeddedStore(EmbeddedStore):
    """The embedded store, counting the GETs of each key."""

    def __init__(self, keys: Keyspace) -> None:
        super().__init__(keys)
        self.gets: Counter[str] = Counter()

    async def get(self, key: str) -> bytes | None:
        self.gets[key] += 1
        return await super().get(key)


class CountingRedisStore(RedisStore):
    """The Redis store, counting the GETs of each key."""

    def __init__(self, url: str, keys: Keyspace, *, cluster: bool) -> None:
        super().__init__(url, keys, cluster=cluster)
        self.gets: Counter[str] = Counter()

    async def get(self, key: str) -> bytes | None:
        self.gets[key] += 1
        return await super().get(key)


Counting = CountingEmbeddedStore | CountingRedisStore


def counting_store(settings: Settings) -> Counting:
    keys = Keyspace(settings.kv_prefix)
    if settings.redis_url is None:
        return CountingEmbeddedStore(keys)
    return CountingRedisStore(settings.redis_url, keys, cluster=settings.redis_cluster)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: FrozenClock, kv: KeyValueStore | None
) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    """An app with its lifespan running (on `kv` when given), and a client for it."""
    application = create_app(settings, clock=clock, kv=kv)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, application.state.ctx


async def eventually(condition: Callable[[], bool], within_s: float = 3.0) -> float:
    """Wait until `condition` holds; how long it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within_s, "not within the bound"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def marks_of(ctx: AppContext) -> MarkCache:
    return ctx.runtime(AuthRuntime).marks


async def family_key_of(ctx: AppContext, person: Resident) -> str:
    """The key of the revocation mark of `person`'s login."""
    family_id = (await authenticate(ctx, person.token)).family_id
    assert family_id is not None
    return store.family_key(ctx, family_id)


@pytest.fixture
async def counted(
    settings: Settings, clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext, Counting]]:
    kv = counting_store(settings)
    try:
        async with running(settings, clock, kv) as (client, ctx):
            await eventually(lambda: marks_of(ctx).live)
            yield client, ctx, kv
    finally:
        await kv.close()


@pytest.mark.cluster
async def test_a_cached_mark_costs_no_store_read(
    counted: tuple[httpx.AsyncClient, AppContext, Counting],
) -> None:
    client, ctx, kv = counted
    someone = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "ven_1")
    family = await family_key_of(ctx, someone)
    state = store.client_state_key(ctx, gate.client_id)
    assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    assert await authenticate(ctx, gate.token)
    kv.gets.clear()
    for _ in range(20):
        assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
        assert await authenticate(ctx, gate.token)
    assert (kv.gets[family], kv.gets[state]) == (0, 0)


async def test_while_the_subscription_is_down_every_request_reads_the_mark(
    counted: tuple[httpx.AsyncClient, AppContext, Counting],
) -> None:
    client, ctx, kv = counted
    someone = await resident(client, ctx)
    family = await family_key_of(ctx, someone)
    runtime = ctx.runtime(AuthRuntime)
    await runtime.close()  # the subscription ends
    assert not runtime.marks.live
    kv.gets.clear()
    for _ in range(5):
        assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    assert kv.gets[family] == 5
    runtime.marks_follower = store.follow_marks(ctx)
    await eventually(lambda: runtime.marks.live)
    kv.gets.clear()
    for _ in range(5):
        assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    assert kv.gets[family] == 1


async def test_tokens_in_use_are_refused_on_the_next_request_after_their_revocation(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    someone = await resident(client, ctx)
    gate = await machine(client, ctx, "gate", "ven_1")
    hospital = await machine(client, ctx, "hospital", "hos_1")
    assert await authenticate(ctx, gate.token) and await authenticate(ctx, hospital.token)
    assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    assert marks_of(ctx).cached(await family_key_of(ctx, someone)) == b""

    assert (await client.post("/v1/auth/logout", headers=someone.headers)).status_code == 200
    assert_problem(await client.get("/v1/residents/me", headers=someone.headers), 401,
                   "unauthorized")  # fmt: skip
    for target, action in ((gate, "disable"), (hospital, "rotate")):
        done = await client.post(f"/v1/admin/clients/{target.client_id}/{action}",
                                 headers=admin.headers)  # fmt: skip
        assert done.status_code == 200, done.text
        with pytest.raises(Unauthorized):
            await authenticate(ctx, target.token)


async def test_the_writer_forgets_the_mark_without_waiting_for_its_own_message(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    family = await family_key_of(ctx, someone)
    runtime = ctx.runtime(AuthRuntime)
    await runtime.close()  # no message arrives from here on ...
    runtime.marks.set_live(True)  # ... though the cache is used as if they did
    assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    assert runtime.marks.cached(family) == b""
    assert (await client.post("/v1/auth/logout", headers=someone.headers)).status_code == 200
    assert_problem(await client.get("/v1/residents/me", headers=someone.headers), 401,
                   "unauthorized")  # fmt: skip


# -- across processes ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def another_process(backend: Backend, ctx: AppContext) -> AsyncIterator[AppContext]:
    """The auth domain started a second time, as another server process has it: its own
    runtime, cache and subscription, on its own connections to the same Redis (the
    embedded store, being in-process, is shared). One process holds one database
    context, so it authenticates tokens through `authenticate`, which needs no other."""
    settings = ctx.settings
    kv = (
        create_store(settings.redis_url, settings.kv_prefix, cluster=settings.redis_cluster)
        if backend.is_real
        else ctx.kv
    )
    other = AppContext(settings=settings, clock=ctx.clock, kv=kv, keys=ctx.keys)
    await auth_wiring.startup(other)
    try:
        await eventually(lambda: marks_of(other).live)
        yield other
    finally:
        await auth_wiring.shutdown(other)
        if kv is not ctx.kv:
            await kv.close()


async def refused_within(ctx: AppContext, token: str, bound_s: float) -> None:
    start = time.monotonic()
    while True:
        try:
            await authenticate(ctx, token)
        except Unauthorized:
            return
        assert time.monotonic() - start < bound_s, "the revocation did not reach the process"
        await asyncio.sleep(0.01)


@pytest.mark.cluster
async def test_a_logout_in_one_process_reaches_the_other_within_pubsub_delivery(
    backend: Backend, client: httpx.AsyncClient, ctx: AppContext
) -> None:
    async with another_process(backend, ctx) as other:
        someone = await resident(client, ctx)
        # The other process holds the login as not revoked ...
        family = await family_key_of(other, someone)
        assert marks_of(other).cached(family) == b""
        assert (await client.post("/v1/auth/logout", headers=someone.headers)).status_code == 200
        # ... and refuses it well before that entry would have expired.
        await refused_within(other, someone.token, 1.0)


async def test_a_rotation_in_one_process_reaches_the_other_within_pubsub_delivery(
    backend: Backend, client: httpx.AsyncClient, ctx: AppContext
) -> None:
    async with another_process(backend, ctx) as other:
        admin = await machine(client, ctx, "admin")
        gate = await machine(client, ctx, "gate", "ven_1")
        assert await authenticate(other, gate.token)
        assert marks_of(other).cached(store.client_state_key(other, gate.client_id)) == b""
        rotated = await client.post(f"/v1/admin/clients/{gate.client_id}/rotate",
                                    headers=admin.headers)  # fmt: skip
        assert rotated.status_code == 200
        await refused_within(other, gate.token, 1.0)


# -- a lost subscription (real Redis) ----------------------------------------------


async def kill_subscribers(backend: Backend) -> int:
    """Drop the test's subscriber connections from the Redis side, as a restart or the
    network would: on one Redis only those of the test's db (other suites share the
    server), on the cluster every node's."""
    assert backend.redis_url is not None
    if backend.redis_cluster:
        from redis.asyncio.cluster import RedisCluster

        cluster = RedisCluster.from_url(backend.redis_url)
        try:
            killed = await cluster.client_kill_filter(
                _type="pubsub", target_nodes=RedisCluster.ALL_NODES
            )
        finally:
            await cluster.aclose()
        return sum(killed.values()) if isinstance(killed, dict) else int(killed)
    direct = aioredis.Redis.from_url(backend.redis_url)
    try:
        db = direct.connection_pool.connection_kwargs.get("db", 0)
        ours: list[Any] = [
            c for c in await direct.client_list(_type="pubsub") if int(c["db"]) == int(db)
        ]
        for connection in ours:
            await direct.client_kill_filter(_id=connection["id"])
        return len(ours)
    finally:
        await direct.aclose()


@pytest.mark.real_only
@pytest.mark.cluster
async def test_after_the_subscription_is_lost_a_revocation_made_meanwhile_is_honoured(
    backend: Backend, client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    family = await family_key_of(ctx, someone)
    assert (await client.get("/v1/residents/me", headers=someone.headers)).status_code == 200
    marks = marks_of(ctx)
    assert marks.cached(family) == b"" and marks.subscriptions == 1
    assert await kill_subscribers(backend) >= 1
    await eventually(lambda: not marks.live or marks.subscriptions > 1)
    # Revoked meanwhile with its announcement lost (written straight into Redis, never
    # published): what the cache held from before the loss must not answer for it,
    # neither while the subscription is down nor once it is back.
    await ctx.kv.set(family, b"1", store.revocation_ttl_ms())
    assert_problem(await client.get("/v1/residents/me", headers=someone.headers), 401,
                   "unauthorized")  # fmt: skip
    await eventually(lambda: marks.live and marks.subscriptions == 2)
    assert_problem(await client.get("/v1/residents/me", headers=someone.headers), 401,
                   "unauthorized")  # fmt: skip
    # Subscribed again within the retry pause, and caching once more.
    other = await resident(client, ctx)
    assert (await client.get("/v1/residents/me", headers=other.headers)).status_code == 200
    assert marks.cached(await family_key_of(ctx, other)) == b""
