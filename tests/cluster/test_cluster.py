"""What only a real Redis Cluster shows: keys of one script must share a slot (the hash
tags are what makes the domains' scripts run there at all), and the cluster client
survives its connections being dropped without failing a command."""

from __future__ import annotations

import asyncio

import pytest
import redis.cluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from app.context import AppContext
from app.kv import RedisStore
from tests.app.test_kv import TAKE
from tests.conftest import Backend

pytestmark = [pytest.mark.cluster, pytest.mark.cluster_only]


def slot(key: str) -> int:
    return key_slot(key.encode())


async def test_a_script_over_keys_of_two_slots_is_refused_and_a_tag_makes_it_run(
    ctx: AppContext,
) -> None:
    assert isinstance(ctx.kv, RedisStore)
    value, counter = ctx.kv.keys.key("t", "item", "1"), ctx.kv.keys.key("t", "taken", "1")
    assert slot(value) != slot(counter)
    await ctx.kv.set(value, "payload")
    with pytest.raises(ResponseError, match="CROSSSLOT"):
        await ctx.kv.eval(TAKE, [value, counter], [5_000])
    # The same two keys under one hash tag land in one slot, and the script runs.
    value = ctx.kv.keys.key("t", "item", "1", tag="order-1")
    counter = ctx.kv.keys.key("t", "taken", "1", tag="order-1")
    assert slot(value) == slot(counter)
    await ctx.kv.set(value, "payload")
    assert await ctx.kv.eval(TAKE, [value, counter], [5_000]) == [1, b"payload"]


async def test_keys_are_spread_over_every_master(ctx: AppContext, backend: Backend) -> None:
    # Per-subject tags spread the codes' keys; were everything in one slot, one master
    # would carry the whole city.
    assert backend.redis_url is not None
    for subject in (f"sub_{i}" for i in range(60)):
        await ctx.kv.set(ctx.kv.keys.key("codes", "status", tag=subject), "1")
    with redis.cluster.RedisCluster.from_url(backend.redis_url) as cluster:
        sizes = [cluster.dbsize(target_nodes=node) for node in cluster.get_primaries()]
    assert len(sizes) == 3 and all(n > 0 for n in sizes), sizes


async def test_after_every_connection_is_dropped_no_command_fails(
    ctx: AppContext, backend: Backend
) -> None:
    # Warm a pool of connections to every master, then have the masters close them all
    # (as a restart or a proxy would) while they sit idle.
    kv = ctx.kv
    tag_keys = [kv.keys.key("t", "n", tag=f"s{i}") for i in range(24)]
    await asyncio.gather(*(kv.incr(k) for k in tag_keys))
    assert backend.redis_url is not None
    with redis.cluster.RedisCluster.from_url(backend.redis_url) as cluster:
        killed = cluster.client_kill_filter(
            _type="normal", skipme=True, target_nodes=redis.cluster.RedisCluster.PRIMARIES
        )
    assert sum(killed.values()) >= 3, killed
    await asyncio.sleep(0.1)
    # Scripts and INCR are never retried: each must find a live connection first time.
    results = await asyncio.gather(
        *(kv.incr(k) for k in tag_keys),
        *(
            kv.eval(TAKE, [kv.keys.key("t", "v", tag=f"s{i}"), k], [5_000])
            for i, k in enumerate(tag_keys)
        ),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert results[: len(tag_keys)] == [2] * len(tag_keys)
