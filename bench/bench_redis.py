"""The Redis client's parser (issue 11): redis-py picks hiredis when it is installed. In
process, CPU µs per call of the commands the hot paths send (a GET, the codes VERIFY
script) through `app.kv.RedisStore`, with hiredis and with redis-py's pure-Python parser,
interleaved rounds. PostgreSQL is not involved; needs `--real` for the Redis URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from app.kv import Keyspace, RedisStore
from bench.harness import BenchOptions, NeedsReal, Report, Row, WrkResult
from codes.store import VERIFY

CALLS = 3000


def _store(url: str, parser: type[Any]) -> RedisStore:
    store = RedisStore(url, Keyspace("benchredis"))
    store.client.connection_pool.connection_kwargs["parser_class"] = parser
    return store


async def _per_call(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(200):
        await call()
    started = time.process_time()
    for _ in range(CALLS):
        await call()
    return (time.process_time() - started) / CALLS * 1e6


async def _measure(url: str, rounds: int) -> dict[str, list[float]]:
    stores = {"hiredis": _store(url, _AsyncHiredisParser), "python": _store(url, _AsyncRESP2Parser)}
    out: dict[str, list[float]] = {}
    keys = ["benchredis:seen", "benchredis:cut", "benchredis:status"]
    try:
        for _ in range(rounds):
            for name, store in stores.items():
                await store.set(keys[2], "1|green|", 60_000)
                calls = {
                    f"GET {name}": lambda s=store: s.get("benchredis:status"),
                    f"VERIFY script {name}": lambda s=store: s.eval(
                        VERIFY, keys, ["v:bench", 60_000, 0, "!revoked"]
                    ),
                }
                for label, call in calls.items():
                    out.setdefault(label, []).append(await _per_call(call))
    finally:
        for store in stores.values():
            await store.close()
    return out


def run(opts: BenchOptions) -> Report:
    if not opts.real:
        raise NeedsReal("redis")
    figures = asyncio.run(_measure(opts.redis_url, max(3, opts.rounds)))
    rows = []
    for label, values in figures.items():
        cpu = sorted(values)[len(values) // 2]
        rows.append(Row(label, WrkResult(1e6 / cpu, 0, 0, CALLS, 0, 0, 0, cpu)))
    return Report(
        title="redis: client CPU per command, hiredis vs redis-py's Python parser (in process)",
        rows=rows,
        notes=[
            "req/s column: calls per second of client CPU; cpu us: median of the rounds",
            "the parser only reads replies; ours are a few bytes, so most of a call is "
            "redis-py's command path and the socket, not parsing",
        ],
    )
