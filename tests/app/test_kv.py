"""The key-value layer: the embedded store, Redis and Redis Cluster pass the same suite,
with real TTLs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from app.errors import DependencyUnavailable
from app.kv import (
    AtomicScript,
    EmbeddedStore,
    Keyspace,
    KeyValueStore,
    LocalView,
    RedisStore,
    create_store,
)
from tests.conftest import TEST_REDIS_CLUSTER_URL, TEST_REDIS_URL, flush_cluster, free_port

# Short real TTLs: long enough that a busy machine does not expire a key before the
# assertion that it is still there, short enough to keep the suite fast.
TTL_MS = 300
PAST_TTL_S = 0.6


# Its own parametrisation rather than `backend`: these tests need no database, and
# preparing one per test would cost more than the tests themselves.
STORES = ["embedded"]
if TEST_REDIS_URL:
    STORES.append("redis")
if TEST_REDIS_CLUSTER_URL:
    STORES.append("cluster")


@dataclass(frozen=True)
class Target:
    """Which store a test runs on: embedded (no URL), one Redis, or a Redis Cluster."""

    url: str | None
    cluster: bool = False

    def create(self, prefix: str) -> KeyValueStore:
        return create_store(self.url, prefix, cluster=self.cluster)


@pytest.fixture(params=STORES)
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "embedded":
        return Target(None)
    if request.param == "cluster":
        assert TEST_REDIS_CLUSTER_URL is not None
        flush_cluster(TEST_REDIS_CLUSTER_URL)
        return Target(TEST_REDIS_CLUSTER_URL, cluster=True)
    assert TEST_REDIS_URL is not None
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return Target(TEST_REDIS_URL)


@pytest.fixture
async def store(target: Target) -> AsyncIterator[KeyValueStore]:
    kv = target.create(f"kvtest-{uuid.uuid4().hex[:8]}")
    try:
        yield kv
    finally:
        await kv.close()


def test_store_is_embedded_without_redis_url_and_redis_with_it(target: Target) -> None:
    kv = target.create("p")
    assert isinstance(kv, EmbeddedStore) is (target.url is None)


async def test_get_returns_what_set_stored_as_bytes(store: KeyValueStore) -> None:
    key = store.keys.key("t", "a")
    assert await store.get(key) is None
    await store.set(key, "text")
    assert await store.get(key) == b"text"
    await store.set(key, 42)
    assert await store.get(key) == b"42"
    await store.set(key, b"\x00\xffraw")
    assert await store.get(key) == b"\x00\xffraw"


async def test_set_with_ttl_expires_in_real_time(store: KeyValueStore) -> None:
    key = store.keys.key("t", "ttl")
    await store.set(key, "v", ttl_ms=TTL_MS)
    remaining = await store.ttl_ms(key)
    assert remaining is not None and 0 < remaining <= TTL_MS
    assert await store.get(key) == b"v"
    await asyncio.sleep(PAST_TTL_S)
    assert await store.get(key) is None
    assert await store.ttl_ms(key) is None


async def test_ttl_is_none_without_expiry_or_key(store: KeyValueStore) -> None:
    key = store.keys.key("t", "forever")
    assert await store.ttl_ms(key) is None
    await store.set(key, "v")
    assert await store.ttl_ms(key) is None
    assert await store.get(key) == b"v"


async def test_set_without_ttl_clears_an_earlier_expiry(store: KeyValueStore) -> None:
    key = store.keys.key("t", "reset")
    await store.set(key, "v1", ttl_ms=TTL_MS)
    await store.set(key, "v2")
    await asyncio.sleep(PAST_TTL_S)
    assert await store.get(key) == b"v2"


async def test_set_if_absent_only_sets_once_until_expiry(store: KeyValueStore) -> None:
    key = store.keys.key("t", "lock")
    assert await store.set_if_absent(key, "first", ttl_ms=TTL_MS) is True
    assert await store.set_if_absent(key, "second", ttl_ms=TTL_MS) is False
    assert await store.get(key) == b"first"
    await asyncio.sleep(PAST_TTL_S)
    assert await store.set_if_absent(key, "third", ttl_ms=TTL_MS) is True
    assert await store.get(key) == b"third"


async def test_set_if_absent_has_one_winner_among_concurrent_callers(
    store: KeyValueStore,
) -> None:
    key = store.keys.key("t", "race")
    results = await asyncio.gather(
        *(store.set_if_absent(key, str(i), ttl_ms=5_000) for i in range(20))
    )
    assert results.count(True) == 1


async def test_delete_counts_the_keys_that_existed(store: KeyValueStore) -> None:
    a, b, c = (store.keys.key("t", name) for name in "abc")
    await store.set(a, 1)
    await store.set(b, 2)
    assert await store.delete(a, b, c) == 2
    assert await store.get(a) is None
    assert await store.delete() == 0


async def test_incr_counts_and_starts_from_zero(store: KeyValueStore) -> None:
    key = store.keys.key("t", "n")
    assert await store.incr(key) == 1
    assert await store.incr(key) == 2
    assert await store.incr(key, 5) == 7
    assert await store.incr(key, -3) == 4
    assert await store.get(key) == b"4"
    assert await store.ttl_ms(key) is None


async def test_incr_sets_the_expiry_once_at_the_first_hit(store: KeyValueStore) -> None:
    key = store.keys.key("t", "window")
    assert await store.incr(key, ttl_ms=TTL_MS) == 1
    await asyncio.sleep(TTL_MS / 2000)
    assert await store.incr(key, ttl_ms=TTL_MS) == 2
    remaining = await store.ttl_ms(key)
    # A second hit must not push the window back to a full TTL.
    assert remaining is not None and remaining <= TTL_MS / 2 + 20
    await asyncio.sleep(PAST_TTL_S)
    assert await store.incr(key, ttl_ms=TTL_MS) == 1


async def test_incr_with_ttl_adds_an_expiry_to_a_counter_without_one(
    store: KeyValueStore,
) -> None:
    key = store.keys.key("t", "late")
    await store.incr(key)
    await store.incr(key, ttl_ms=TTL_MS)
    remaining = await store.ttl_ms(key)
    assert remaining is not None and remaining <= TTL_MS


# -- atomic scripts: Lua on Redis, the Python twin on the embedded store --------------


def _swap_if_equal(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> int:
    current = view.get(keys[0])
    if current is not None and current.decode() == args[0]:
        view.set(keys[0], args[1], int(args[2]))
        return 1
    return 0


SWAP_IF_EQUAL = AtomicScript(
    name="test_swap_if_equal",
    lua="""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
""",
    local=_swap_if_equal,
)


def _take(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> list[int | bytes]:
    value = view.get(keys[0])
    if value is None:
        return [0]
    view.delete(keys[0])
    total = view.incrby(keys[1], 1)
    if total == 1:
        view.pexpire(keys[1], int(args[0]))
    return [total, value]


# Two keys in one script: they share a hash tag so Redis Cluster keeps them in one slot.
TAKE = AtomicScript(
    name="test_take",
    lua="""
local value = redis.call('GET', KEYS[1])
if not value then
  return {0}
end
redis.call('DEL', KEYS[1])
local total = redis.call('INCRBY', KEYS[2], 1)
if total == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return {total, value}
""",
    local=_take,
)


def _get(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> bytes | None:
    return view.get(keys[0])


GET = AtomicScript(name="test_get", lua="return redis.call('GET', KEYS[1])", local=_get)


async def test_script_compare_and_set_acts_only_on_a_match(store: KeyValueStore) -> None:
    key = store.keys.key("t", "cas")
    await store.set(key, "old")
    assert await store.eval(SWAP_IF_EQUAL, [key], ["other", "new", TTL_MS]) == 0
    assert await store.get(key) == b"old"
    assert await store.eval(SWAP_IF_EQUAL, [key], ["old", "new", TTL_MS]) == 1
    assert await store.get(key) == b"new"
    remaining = await store.ttl_ms(key)
    assert remaining is not None and remaining <= TTL_MS
    await asyncio.sleep(PAST_TTL_S)
    assert await store.get(key) is None


async def test_script_results_have_the_same_types_on_both_stores(store: KeyValueStore) -> None:
    value = store.keys.key("t", "item", tag="order-1")
    counter = store.keys.key("t", "taken", tag="order-1")
    assert await store.eval(GET, [value], []) is None
    assert await store.eval(TAKE, [value, counter], [TTL_MS]) == [0]
    await store.set(value, "payload")
    assert await store.eval(GET, [value], []) == b"payload"
    assert await store.eval(TAKE, [value, counter], [TTL_MS]) == [1, b"payload"]
    assert await store.get(value) is None
    await store.set(value, "again")
    assert await store.eval(TAKE, [value, counter], [TTL_MS]) == [2, b"again"]
    remaining = await store.ttl_ms(counter)
    assert remaining is not None and remaining <= TTL_MS


async def test_script_is_atomic_under_concurrent_callers(store: KeyValueStore) -> None:
    value = store.keys.key("t", "once", tag="once")
    counter = store.keys.key("t", "once-n", tag="once")
    await store.set(value, "the-only-one")
    results = await asyncio.gather(
        *(store.eval(TAKE, [value, counter], [5_000]) for _ in range(20))
    )
    assert sorted(results, key=len) == [[0]] * 19 + [[1, b"the-only-one"]]


async def test_a_wrong_type_is_a_bug_not_an_outage(store: KeyValueStore) -> None:
    key = store.keys.key("t", "zset")
    await store.window_hit(key, now_ms=1, window_ms=1000, limit=5, member="m")
    with pytest.raises((TypeError, ResponseError)):
        await store.get(key)


# -- sliding window --------------------------------------------------------------------


async def test_window_admits_up_to_the_limit_then_says_when_to_retry(
    store: KeyValueStore,
) -> None:
    key = store.keys.key("rl", "phone", "p1")
    t0 = int(time.time() * 1000)
    hits = [
        await store.window_hit(key, now_ms=t0 + i * 100, window_ms=1000, limit=3, member=f"h{i}")
        for i in range(3)
    ]
    assert [(h.allowed, h.count, h.retry_after_ms) for h in hits] == [
        (True, 1, 0),
        (True, 2, 0),
        (True, 3, 0),
    ]
    refused = await store.window_hit(key, now_ms=t0 + 250, window_ms=1000, limit=3, member="h3")
    assert (refused.allowed, refused.count, refused.retry_after_ms) == (False, 3, 750)
    # The oldest hit leaves the window exactly `window_ms` after it was made.
    again = await store.window_hit(key, now_ms=t0 + 1000, window_ms=1000, limit=3, member="h4")
    assert (again.allowed, again.count) == (True, 3)


async def test_refused_hits_do_not_count(store: KeyValueStore) -> None:
    key = store.keys.key("rl", "ip", "1.2.3.4")
    t0 = int(time.time() * 1000)
    await store.window_hit(key, now_ms=t0, window_ms=1000, limit=1, member="a")
    for i in range(5):
        refused = await store.window_hit(
            key, now_ms=t0 + 10 + i, window_ms=1000, limit=1, member=f"r{i}"
        )
        assert not refused.allowed
    later = await store.window_hit(key, now_ms=t0 + 1001, window_ms=1000, limit=1, member="b")
    assert later.allowed and later.count == 1


async def test_window_key_expires_with_its_window(store: KeyValueStore) -> None:
    key = store.keys.key("rl", "exp")
    now = int(time.time() * 1000)
    await store.window_hit(key, now_ms=now, window_ms=TTL_MS, limit=5, member="a")
    remaining = await store.ttl_ms(key)
    assert remaining is not None and remaining <= TTL_MS
    await asyncio.sleep(PAST_TTL_S)
    assert await store.ttl_ms(key) is None


async def test_windows_of_different_keys_are_independent(store: KeyValueStore) -> None:
    now = int(time.time() * 1000)
    a, b = store.keys.key("rl", "a"), store.keys.key("rl", "b")
    assert (await store.window_hit(a, now_ms=now, window_ms=1000, limit=1, member="x")).allowed
    assert (await store.window_hit(b, now_ms=now, window_ms=1000, limit=1, member="x")).allowed
    assert not (await store.window_hit(a, now_ms=now, window_ms=1000, limit=1, member="y")).allowed


# -- keys: namespacing and Redis Cluster hash tags ----------------------------------------


def test_keys_are_namespaced_under_the_prefix() -> None:
    keys = Keyspace("suishen")
    assert keys.key("otp", "phone", 42) == "suishen:otp:phone:42"
    assert keys.key("codes") == "suishen:codes"


def test_tagged_keys_carry_the_tag_in_braces() -> None:
    keys = Keyspace("suishen")
    assert keys.key("scan", "s1", tag="gate-7") == "suishen:{gate-7}:scan:s1"


def test_keys_sharing_a_tag_share_a_cluster_slot() -> None:
    keys = Keyspace("suishen")
    tagged = {key_slot(keys.key(ns, "x", tag="enc-9").encode()) for ns in ("lock", "seen", "n")}
    assert len(tagged) == 1
    untagged = {key_slot(keys.key(ns, "x").encode()) for ns in ("lock", "seen", "n", "m", "o")}
    assert len(untagged) > 1


@pytest.mark.parametrize("prefix", ["", "a:b", "a{b}", "a b"])
def test_prefix_that_would_break_namespacing_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Keyspace(prefix)


async def test_stores_with_different_prefixes_do_not_see_each_other(target: Target) -> None:
    one = target.create(f"one-{uuid.uuid4().hex[:6]}")
    two = target.create(f"two-{uuid.uuid4().hex[:6]}")
    try:
        await one.set(one.keys.key("otp", "p"), "1")
        assert await two.get(two.keys.key("otp", "p")) is None
        assert await one.get(one.keys.key("otp", "p")) == b"1"
    finally:
        await one.close()
        await two.close()


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", [False, True], ids=["node", "cluster"])
async def test_unreachable_redis_is_dependency_unavailable_at_once(cluster: bool) -> None:
    kv = create_store(f"redis://127.0.0.1:{free_port()}/0", "down", cluster=cluster)
    started = time.monotonic()
    try:
        with pytest.raises(DependencyUnavailable):
            await kv.ping()
        with pytest.raises(DependencyUnavailable):
            await kv.get(kv.keys.key("t", "a"))
        with pytest.raises(DependencyUnavailable):
            await kv.eval(GET, [kv.keys.key("t", "a")], [])
    finally:
        await kv.close()
    # Not the cluster client's own ten retries with backoff: each call fails at once.
    assert time.monotonic() - started < 1.0


# -- the Redis connection pool: past its cap callers wait their turn, then give up --------


def _small_store(max_connections: int, timeout_s: float) -> RedisStore:
    # The pool is Redis's alone: these run on the machine's Redis with either backend.
    url = TEST_REDIS_URL or "redis://127.0.0.1:6379/0"
    keys = Keyspace(f"pool{uuid.uuid4().hex[:8]}")
    return RedisStore(url, keys, timeout_s=timeout_s, max_connections=max_connections)


async def test_a_burst_past_the_pool_cap_waits_its_turn_and_all_succeed() -> None:
    store = _small_store(max_connections=2, timeout_s=2.0)
    try:
        await store.set(store.keys.key("t", "k"), b"v")
        got = await asyncio.gather(*(store.get(store.keys.key("t", "k")) for _ in range(200)))
        assert got == [b"v"] * 200
        pool = store.client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
    finally:
        await store.close()


async def test_no_free_connection_in_time_is_an_outage_and_a_release_wakes_a_waiter() -> None:
    store = _small_store(max_connections=1, timeout_s=0.3)
    pool = store.client.connection_pool
    key = store.keys.key("t", "k")
    try:
        held = await pool.get_connection()  # the only connection, taken by someone else
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await store.get(key)
        assert 0.25 < time.monotonic() - started < 2
        waiting = asyncio.create_task(store.get(key))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await pool.release(held)
        assert await asyncio.wait_for(waiting, 1) is None
    finally:
        await store.close()


async def test_a_command_larger_than_the_socket_buffer_is_written_whole() -> None:
    # Most commands fit the socket buffer at once; this one waits for it to drain.
    store = _small_store(max_connections=2, timeout_s=2.0)
    key = store.keys.key("t", "big")
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB
    try:
        await store.set(key, big, ttl_ms=10_000)
        assert await store.get(key) == big
        assert await store.get(store.keys.key("t", "after")) is None  # the connection is sane
    finally:
        await store.close()


async def test_a_script_runs_again_after_redis_forgot_its_scripts() -> None:
    # A restarted Redis has no scripts loaded: the next call loads it and runs it once.
    store = _small_store(max_connections=4, timeout_s=2.0)
    key = store.keys.key("t", "cas")
    try:
        await store.set(key, "old")
        assert await store.eval(SWAP_IF_EQUAL, [key], ["old", "mid", TTL_MS]) == 1
        await store.client.script_flush()
        assert await store.eval(SWAP_IF_EQUAL, [key], ["mid", "new", TTL_MS]) == 1
        assert await store.get(key) == b"new"  # ran exactly once: "mid" became "new"
    finally:
        await store.close()
