"""The key-value layer: what Redis does for us, behind one small async interface.

Two implementations behave identically (one test suite runs against both):
`RedisStore` over `redis.asyncio` for any real deployment, and `EmbeddedStore`, an
in-process substitute for one-process development (the server refuses more than one
worker without Redis).

Atomic multi-step operations are `AtomicScript`s: the Lua source Redis runs, and a
Python twin the embedded store runs against its own data with no await in between,
which makes it just as atomic in one event loop. Scripts return what Lua can return
through Redis: ints, bytes, None, and lists of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import DependencyUnavailable

Value = bytes | str | int
log = logging.getLogger("suishen.kv")


class Keyspace:
    """Builds namespaced keys: `<prefix>:<namespace>:<parts>`.

    Keys that one script touches together must live in one Redis Cluster slot, so they
    share a hash tag: `<prefix>:{<tag>}:<namespace>:<parts>`. Redis hashes only the part
    between the braces.
    """

    def __init__(self, prefix: str) -> None:
        if not prefix or any(c in prefix for c in "{}: "):
            raise ValueError("key prefix must be non-empty and free of braces, colons, spaces")
        self.prefix = prefix

    def key(self, namespace: str, *parts: str | int, tag: str | None = None) -> str:
        head = (
            f"{self.prefix}:{{{tag}}}:{namespace}"
            if tag is not None
            else (f"{self.prefix}:{namespace}")
        )
        return ":".join([head, *(str(p) for p in parts)])


@dataclass(frozen=True)
class WindowResult:
    """Outcome of a sliding-window hit: whether it was admitted, the count in the window
    (including this hit when admitted) and how long until the next hit would be admitted."""

    allowed: bool
    count: int
    retry_after_ms: int


class LocalView(Protocol):
    """The synchronous data operations a script's Python twin may use (Redis command names)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: Value, ttl_ms: int | None = None) -> None: ...
    def delete(self, key: str) -> int: ...
    def incrby(self, key: str, amount: int) -> int: ...
    def pexpire(self, key: str, ttl_ms: int) -> None: ...
    def pttl(self, key: str) -> int: ...


@dataclass(frozen=True)
class AtomicScript:
    """An atomic compare-and-act: Lua for Redis, a Python twin for the embedded store."""

    name: str
    lua: str
    local: Callable[[LocalView, Sequence[str], Sequence[str]], Any]


class KeyValueStore(Protocol):
    keys: Keyspace

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: Value, ttl_ms: int | None = None) -> None: ...
    async def set_if_absent(self, key: str, value: Value, ttl_ms: int) -> bool: ...
    async def delete(self, *keys: str) -> int: ...
    async def incr(self, key: str, amount: int = 1, ttl_ms: int | None = None) -> int: ...
    async def ttl_ms(self, key: str) -> int | None: ...
    async def eval(
        self, script: AtomicScript, keys: Sequence[str], args: Sequence[Value]
    ) -> Any: ...
    async def window_hit(
        self, key: str, *, now_ms: int, window_ms: int, limit: int, member: str
    ) -> WindowResult: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: Value) -> None:
        """Send `message` to every process following `channel` now (none: dropped). It may
        arrive twice (a publish on a broken connection is sent again)."""

    async def follow(
        self, channel: str, on_message: Callable[[bytes], None], on_live: Callable[[bool], None]
    ) -> None:
        """Hand each message published on `channel` to `on_message`, until cancelled.
        `on_live(True)` once the subscription is confirmed (again), `on_live(False)` as
        soon as it is lost: what was published in between never arrives."""


def _b(value: Value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


# INCRBY then set the expiry only when this increment created the key, so a
# counter's window starts at its first hit and is not pushed back by later ones.
_INCR_LUA = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""

# Sliding window on a sorted set scored by milliseconds: drop hits older than the
# window, refuse when full (saying when the oldest hit leaves), else record this hit.
_WINDOW_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, count, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, count + 1, 0}
"""


def _is_dead(connection: Any) -> bool:
    """Whether an idle connection was closed or reset by the other side.

    redis-py notices a pooled connection the server closed politely (EOF), but not one
    that was reset (RST: Redis restarted, a proxy or the network dropped it): asyncio
    keeps the reset as the reader's exception, not as EOF, so the next command would be
    written into a dead socket and fail. Each such connection would fail one request
    after Redis is back; checked here, it is replaced before any command is sent on it."""
    reader = getattr(connection, "_reader", None)
    writer = getattr(connection, "_writer", None)
    return reader is not None and (
        reader.exception() is not None
        or reader.at_eof()
        or (writer is not None and writer.transport.is_closing())
    )


class _LeanConnection(aioredis.Connection):
    """A Redis connection that sends a command without starting a task for it.

    redis-py bounds every write with `asyncio.wait_for(..., socket_timeout)`, which on
    Python 3.11 wraps the write in a new Task: about a third of a command's client CPU.
    A command fits the socket buffer almost always, and then the write cannot block; only
    a write that fills the buffer waits for it to drain, within the same timeout."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        writer = self._writer
        if writer is None or not self.is_connected or not self.socket_timeout:
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]  # a PING when due
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer.writelines(command)
            if writer.transport.get_write_buffer_size():  # the socket took less than all
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # a half-written command poisons it
            raise


class _FreshConnectionPool(aioredis.ConnectionPool):
    """A pool that waits (up to `timeout`) for a free connection past `max_connections`
    and never hands out one already known to be dead.

    It replaces redis-py's BlockingConnectionPool, whose every checkout and release goes
    through an asyncio.Condition, a lock, a timeout context and several awaited metrics
    recorders: about a fifth of a Redis command's client CPU. Between two awaits only one
    coroutine runs, so the free list needs no lock; waiters queue in order."""

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *_args: Any, **_options: Any) -> Any:
        while not self._available_connections and (
            len(self._in_use_connections) >= self.max_connections
        ):
            await self._wait_for_release()
        connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            if _is_dead(connection):
                await connection.disconnect()
            # A connected, clean connection is ready as it is; redis-py's connect() on it
            # still costs a retry wrapper and two coroutines per command.
            if not connection.is_connected or await connection.can_read():
                await self.ensure_connection(connection)  # connects, or replaces a dirty one
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _wait_for_release(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, but leaving: the wake-up goes to the next one
            if isinstance(exc, TimeoutError):
                # `RedisStore._call` tells this (no free connection in time) by its cause.
                raise RedisConnectionError("No connection available.") from exc
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def release(self, connection: Any) -> None:
        self._in_use_connections.discard(connection)
        if connection.should_reconnect():
            await connection.disconnect()
        self._available_connections.append(connection)
        self._wake_one()


class _FreshClusterConnection(_LeanConnection):
    """A Redis Cluster node's connection that reconnects rather than send a command into
    a dead socket: the cluster client keeps its connections per node, with no pool that
    checks them, and without this a node's restart would fail one command per connection
    it had (scripts, which are never retried, included)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if _is_dead(self):
            await self.disconnect()
        await super().send_packed_command(command, check_health)


def _cluster_client(url: str, max_connections: int, options: dict[str, Any]) -> RedisCluster:
    """A Redis Cluster client that leaves retries to `RedisStore._call`.

    By default it retries every command up to ten times on a broken connection or a
    timeout, scripts and INCR included (which may have run before the break), and takes
    seconds to give up on a cluster that is down. With no retries a broken connection
    marks the topology for a refresh and raises; `_call` repeats only what is safe to
    repeat, on the refreshed topology."""
    client = RedisCluster.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,  # per node; past it a command fails at once
        health_check_interval=30,
        **options,
    )
    # The nodes the client discovers are built from these connection arguments.
    client.connection_kwargs["connection_class"] = _FreshClusterConnection
    for node in client.startup_nodes:
        node.connection_class = _FreshClusterConnection
    return client


class RedisStore:
    """`KeyValueStore` over redis.asyncio (single node, or Redis Cluster)."""

    def __init__(
        self,
        url: str,
        keys: Keyspace,
        *,
        cluster: bool = False,
        timeout_s: float = 0.5,
        max_connections: int = 512,
    ) -> None:
        self.keys = keys
        options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }
        # Past `max_connections` concurrent commands a caller waits (up to the timeout) for
        # a free connection, where redis-py's default pool fails at once with "Too many
        # connections" (its default cap is 100) under a burst of requests.
        self._pool: _FreshConnectionPool | None = None
        if cluster:
            self._client: Any = _cluster_client(url, max_connections, options)
        else:
            self._pool = _FreshConnectionPool.from_url(
                url,
                connection_class=_LeanConnection,
                max_connections=max_connections,
                timeout=timeout_s,
                health_check_interval=30,
                **options,
            )
            self._client = aioredis.Redis.from_pool(self._pool)
        # GET on one node goes the lean way (`_command`); made once, not per call.
        self._get: Callable[[str], Awaitable[Any]] = (
            self._client.get if self._pool is None else partial(self._command, "GET")
        )
        # The cluster client learns the slot map before the first command it routes: sent
        # before that, a command goes to a random node, and the redirect it earns makes
        # the client reset connections that concurrent commands are still opening
        # (redis-py 8.1). `initialize` returns at once once the map is known.
        self._prepare: Callable[[], Awaitable[Any]] | None = (
            self._client.initialize if cluster else None
        )
        self._scripts: dict[str, Any] = {}
        self._incr = self._client.register_script(_INCR_LUA)
        self._window = self._client.register_script(_WINDOW_LUA)

    @property
    def client(self) -> Any:
        return self._client

    async def _call(
        self, fn: Callable[..., Any], *args: Any, safe: bool = False, **kwargs: Any
    ) -> Any:
        """Run one command. A `safe` one (running it twice has the effect of once) is
        retried once on a broken connection, on a fresh one; a command that may have
        been applied before its connection broke (SET NX, INCR, scripts) is not, and
        neither is one that timed out, so a Redis that is really gone fails as fast."""
        try:
            if self._prepare is not None:
                await self._prepare()
            try:
                return await fn(*args, **kwargs)
            except RedisConnectionError as exc:
                if not safe or isinstance(exc.__cause__, TimeoutError):
                    raise  # not repeatable, or the pool had no free connection in time
                return await fn(*args, **kwargs)
        except RedisClusterException as exc:
            if "same key slot" in str(exc):
                # The cluster client refuses, before sending, a script whose keys lie in
                # several slots: a key missing its hash tag is a bug, as CROSSSLOT is.
                raise ClusterCrossSlotError(f"CROSSSLOT {exc}") from exc
            raise DependencyUnavailable("the key-value store (Redis) did not answer") from exc
        except (ClusterDownError, TryAgainError) as exc:
            # A cluster mid-failover or mid-resharding answers these: an outage.
            raise DependencyUnavailable("the key-value store (Redis) did not answer") from exc
        except ResponseError:
            # Redis answered: a wrong type, a failing script or keys of one script in
            # different cluster slots (CROSSSLOT) is a bug, not an outage.
            raise
        except (TimeoutError, RedisError, OSError) as exc:
            raise DependencyUnavailable("the key-value store (Redis) did not answer") from exc

    async def _command(self, *args: Any) -> Any:
        """One command on a pooled connection of the single-node client, and its raw reply:
        the hot paths' GET and EVALSHA without redis-py's per-command machinery (a retry
        wrapper, awaited metrics recorders, response callbacks), about a third of their
        client CPU. A connection that failed mid-command is closed, never pooled dirty."""
        assert self._pool is not None
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(connection.pack_command(*args))
            return await connection.read_response()
        except ResponseError:
            raise  # Redis answered; the connection is in step
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            await self._pool.release(connection)

    async def get(self, key: str) -> bytes | None:
        result: bytes | None = await self._call(self._get, key, safe=True)
        return result

    async def set(self, key: str, value: Value, ttl_ms: int | None = None) -> None:
        await self._call(self._client.set, key, _b(value), px=ttl_ms, safe=True)

    async def set_if_absent(self, key: str, value: Value, ttl_ms: int) -> bool:
        return bool(await self._call(self._client.set, key, _b(value), px=ttl_ms, nx=True))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        # One DEL per key keeps Redis Cluster happy when keys sit in different slots.
        total = 0
        for key in keys:
            total += int(await self._call(self._client.delete, key, safe=True))
        return total

    async def incr(self, key: str, amount: int = 1, ttl_ms: int | None = None) -> int:
        return int(await self._call(self._incr, keys=[key], args=[amount, ttl_ms or 0]))

    async def ttl_ms(self, key: str) -> int | None:
        ttl = int(await self._call(self._client.pttl, key, safe=True))
        return ttl if ttl >= 0 else None

    async def eval(self, script: AtomicScript, keys: Sequence[str], args: Sequence[Value]) -> Any:
        registered = self._scripts.get(script.name)
        if registered is None:
            registered = self._client.register_script(script.lua)
            self._scripts[script.name] = registered
        values = [_b(a) for a in args]
        if self._pool is None:
            return await self._call(registered, keys=list(keys), args=values)
        try:
            return await self._call(
                self._command, "EVALSHA", registered.sha, len(keys), *keys, *values
            )
        except NoScriptError:
            # Redis restarted or its scripts were flushed: load it again, then run it.
            await self._call(self._command, "SCRIPT", "LOAD", script.lua, safe=True)
            return await self._call(
                self._command, "EVALSHA", registered.sha, len(keys), *keys, *values
            )

    async def window_hit(
        self, key: str, *, now_ms: int, window_ms: int, limit: int, member: str
    ) -> WindowResult:
        allowed, count, retry = await self._call(
            self._window, keys=[key], args=[now_ms, window_ms, limit, member]
        )
        return WindowResult(bool(allowed), int(count), int(retry))

    async def ping(self) -> None:
        await self._call(self._client.ping, safe=True)

    async def close(self) -> None:
        await self._client.aclose()

    async def publish(self, channel: str, message: Value) -> None:
        # On a cluster, a classic PUBLISH reaches the subscribers of every node.
        await self._call(self._client.publish, channel, _b(message), safe=True)

    async def follow(
        self, channel: str, on_message: Callable[[bytes], None], on_live: Callable[[bool], None]
    ) -> None:
        """See `KeyValueStore.follow`. The subscription has a connection of its own, tried
        again after a pause that grows while it fails (on a cluster, on the next node)."""
        attempt = failures = 0
        while True:
            subscribed = False
            try:
                if self._prepare is not None:
                    await self._prepare()
                subscriber = aioredis.Redis.from_pool(self._subscriber_pool(attempt))
                try:
                    pubsub = subscriber.pubsub()
                    await pubsub.subscribe(channel)
                    _honour_cancel()
                    async for message in _messages(pubsub):
                        if message["type"] == "subscribe":
                            subscribed = True
                            on_live(True)
                        elif message["type"] == "message":
                            on_message(message["data"])
                finally:
                    await subscriber.aclose()
            except Exception as exc:  # any failure: go without, and subscribe again
                log.warning("subscription to %s lost: %r", channel, exc)
            finally:
                on_live(False)
            attempt += 1
            failures = 0 if subscribed else failures + 1
            await asyncio.sleep(min(_FOLLOW_RETRY_MAX_S, _FOLLOW_RETRY_S * 2**failures))

    def _subscriber_pool(self, attempt: int) -> aioredis.ConnectionPool:
        """A pool for one subscriber connection: to the Redis the store uses, or to one of
        the cluster's nodes (any node hears every PUBLISH), with the store's settings."""
        if isinstance(self._client, RedisCluster):
            nodes = self._client.get_nodes()
            node = nodes[attempt % len(nodes)]
            connection_class, kwargs = node.connection_class, node.connection_kwargs
        else:
            pool = self._client.connection_pool
            connection_class, kwargs = pool.connection_class, pool.connection_kwargs
        options = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_SUBSCRIBER}
        # No retries: a broken connection must end the subscription here, where it is
        # noticed, not be reconnected silently under it with its messages lost.
        return aioredis.ConnectionPool(
            connection_class=connection_class, retry=Retry(NoBackoff(), 0), **options
        )


# A subscriber checks its connection itself (`_messages`), and the maintenance handler
# belongs to the pool it was made for.
_NOT_FOR_SUBSCRIBER = frozenset({"health_check_interval", "maint_notifications_pool_handler"})
_FOLLOW_PING_S = 5.0
_FOLLOW_RETRY_S = 0.05
_FOLLOW_RETRY_MAX_S = 2.0


async def _messages(pubsub: Any) -> AsyncIterator[dict[str, Any]]:
    """A subscription's messages (confirmations included). Silent for `_FOLLOW_PING_S`, it
    sends a PING; no answer by the next interval means the connection is dead, even with
    no sign of it (a network that drops packets never resets the connection)."""
    pinged = False
    while True:
        message = await pubsub.get_message(timeout=_FOLLOW_PING_S)
        _honour_cancel()
        if message is not None:
            pinged = False
            yield message
        elif pinged:
            raise RedisConnectionError("the subscription stopped answering PING")
        else:
            await pubsub.ping()
            _honour_cancel()
            pinged = True


def _honour_cancel() -> None:
    """Raise CancelledError if the task was cancelled. On Python 3.11, redis-py's writes
    (`asyncio.wait_for`) swallow a cancellation that arrives as the write completes; the
    request stays counted on the task, and a follower must not outlive its app for it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class _Entry:
    value: bytes | dict[str, int]
    expires_at_ms: int | None


class EmbeddedStore:
    """In-process `KeyValueStore` for one-process development and tests.

    Expiry uses a monotonic clock, like Redis, so wall-clock changes never resurrect or
    kill keys early. Expired entries are dropped when touched and swept now and then.
    """

    _SWEEP_EVERY = 1024

    def __init__(self, keys: Keyspace) -> None:
        self.keys = keys
        self._data: dict[str, _Entry] = {}
        self._ops = 0
        self._followers: dict[str, list[Callable[[bytes], None]]] = {}

    @staticmethod
    def _now_ms() -> int:
        return int(time.monotonic() * 1000)

    def _entry(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        expires = entry.expires_at_ms if entry is not None else None
        if expires is not None and expires <= self._now_ms():
            del self._data[key]
            return None
        return entry

    def _tick(self) -> None:
        self._ops += 1
        if self._ops % self._SWEEP_EVERY == 0:
            now = self._now_ms()
            for key in [
                k for k, e in self._data.items() if e.expires_at_ms and e.expires_at_ms <= now
            ]:
                del self._data[key]

    # -- LocalView: synchronous Redis-like commands used by scripts' Python twins --

    def get_sync(self, key: str) -> bytes | None:
        entry = self._entry(key)
        if entry is None:
            return None
        if not isinstance(entry.value, bytes):
            raise TypeError(f"WRONGTYPE key {key} holds a sorted set")
        return entry.value

    def set_sync(self, key: str, value: Value, ttl_ms: int | None = None) -> None:
        expires = self._now_ms() + ttl_ms if ttl_ms else None
        self._data[key] = _Entry(_b(value), expires)

    def delete_sync(self, key: str) -> int:
        if self._entry(key) is None:
            return 0
        del self._data[key]
        return 1

    def incrby_sync(self, key: str, amount: int) -> int:
        entry = self._entry(key)
        current = int(entry.value) if entry is not None and isinstance(entry.value, bytes) else 0
        new = current + amount
        if entry is None:
            self._data[key] = _Entry(str(new).encode(), None)
        else:
            entry.value = str(new).encode()
        return new

    def pexpire_sync(self, key: str, ttl_ms: int) -> None:
        entry = self._entry(key)
        if entry is not None:
            entry.expires_at_ms = self._now_ms() + ttl_ms

    def pttl_sync(self, key: str) -> int:
        entry = self._entry(key)
        if entry is None:
            return -2
        if entry.expires_at_ms is None:
            return -1
        return max(0, entry.expires_at_ms - self._now_ms())

    # -- KeyValueStore --

    async def get(self, key: str) -> bytes | None:
        self._tick()
        return self.get_sync(key)

    async def set(self, key: str, value: Value, ttl_ms: int | None = None) -> None:
        self._tick()
        self.set_sync(key, value, ttl_ms)

    async def set_if_absent(self, key: str, value: Value, ttl_ms: int) -> bool:
        self._tick()
        if self._entry(key) is not None:
            return False
        self.set_sync(key, value, ttl_ms)
        return True

    async def delete(self, *keys: str) -> int:
        self._tick()
        return sum(self.delete_sync(k) for k in keys)

    async def incr(self, key: str, amount: int = 1, ttl_ms: int | None = None) -> int:
        self._tick()
        value = self.incrby_sync(key, amount)
        if ttl_ms and self.pttl_sync(key) == -1:
            self.pexpire_sync(key, ttl_ms)
        return value

    async def ttl_ms(self, key: str) -> int | None:
        ttl = self.pttl_sync(key)
        return ttl if ttl >= 0 else None

    async def eval(self, script: AtomicScript, keys: Sequence[str], args: Sequence[Value]) -> Any:
        self._tick()
        return script.local(_EmbeddedView(self), list(keys), [_b(a).decode() for a in args])

    async def window_hit(
        self, key: str, *, now_ms: int, window_ms: int, limit: int, member: str
    ) -> WindowResult:
        self._tick()
        entry = self._entry(key)
        hits: dict[str, int]
        if entry is None or not isinstance(entry.value, dict):
            hits = {}
            entry = _Entry(hits, None)
            self._data[key] = entry
        else:
            hits = entry.value
        for m in [m for m, score in hits.items() if score <= now_ms - window_ms]:
            del hits[m]
        if len(hits) >= limit:
            oldest = min(hits.values())
            return WindowResult(False, len(hits), oldest + window_ms - now_ms)
        hits[member] = now_ms
        entry.expires_at_ms = self._now_ms() + window_ms
        return WindowResult(True, len(hits), 0)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()

    async def publish(self, channel: str, message: Value) -> None:
        for deliver in list(self._followers.get(channel, ())):
            deliver(_b(message))

    async def follow(
        self, channel: str, on_message: Callable[[bytes], None], on_live: Callable[[bool], None]
    ) -> None:
        # One process: the subscription is live from the start and cannot be lost.
        followers = self._followers.setdefault(channel, [])
        followers.append(on_message)
        on_live(True)
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            followers.remove(on_message)
            on_live(False)


class _EmbeddedView:
    """Adapts EmbeddedStore's synchronous commands to the LocalView protocol."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.get = store.get_sync
        self.set = store.set_sync
        self.delete = store.delete_sync
        self.incrby = store.incrby_sync
        self.pexpire = store.pexpire_sync
        self.pttl = store.pttl_sync


def create_store(redis_url: str | None, prefix: str, *, cluster: bool = False) -> KeyValueStore:
    keys = Keyspace(prefix)
    if redis_url is None:
        return EmbeddedStore(keys)
    return RedisStore(redis_url, keys, cluster=cluster)
