"""Publish and follow on every store: messages reach each follower once subscribed, and a
follower hears when its subscription is live and when it is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio.cluster import RedisCluster

from app.kv import EmbeddedStore, KeyValueStore, RedisStore, create_store
from tests.conftest import TEST_REDIS_CLUSTER_URL, TEST_REDIS_URL

STORES = ["embedded"]
if TEST_REDIS_URL:
    STORES.append("redis")
if TEST_REDIS_CLUSTER_URL:
    STORES.append("cluster")


@dataclass
class Follower:
    """What a follower heard: messages, and the subscription's live/lost changes."""

    messages: list[bytes] = field(default_factory=list)
    states: list[bool] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return bool(self.states) and self.states[-1]


async def eventually(condition: Callable[[], bool], within_s: float = 3.0) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within_s, "not within the bound"
        await asyncio.sleep(0.005)


@pytest.fixture(params=STORES)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[list[KeyValueStore]]:
    """Two stores on one Redis (two processes' views of it); one shared embedded store."""
    prefix = f"follow-{uuid.uuid4().hex[:8]}"
    if request.param == "embedded":
        one = create_store(None, prefix)
        yield [one, one]
        return
    url = TEST_REDIS_CLUSTER_URL if request.param == "cluster" else TEST_REDIS_URL
    cluster = request.param == "cluster"
    made = [create_store(url, prefix, cluster=cluster) for _ in range(2)]
    try:
        yield made
    finally:
        for kv in made:
            await kv.close()


def follow(kv: KeyValueStore, channel: str) -> Follower:
    heard = Follower()
    heard.task = asyncio.create_task(kv.follow(channel, heard.messages.append, heard.states.append))
    return heard


async def stop(heard: Follower) -> None:
    assert heard.task is not None
    heard.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await heard.task


async def test_a_published_message_reaches_every_live_follower(
    stores: list[KeyValueStore],
) -> None:
    channel = stores[0].keys.key("test", "chan")
    followers = [follow(kv, channel) for kv in stores]
    await eventually(lambda: all(f.live for f in followers))
    await stores[0].publish(channel, "a-key")
    await stores[1].publish(channel, b"another")
    await eventually(lambda: all(len(f.messages) == 2 for f in followers))
    assert all(f.messages == [b"a-key", b"another"] for f in followers)
    for heard in followers:
        await stop(heard)
        assert heard.states == [True, False]


async def test_a_message_on_another_channel_is_not_heard(stores: list[KeyValueStore]) -> None:
    heard = follow(stores[0], stores[0].keys.key("test", "mine"))
    await eventually(lambda: heard.live)
    await stores[1].publish(stores[1].keys.key("test", "other"), "x")
    await stores[1].publish(stores[1].keys.key("test", "mine"), "y")
    await eventually(lambda: heard.messages == [b"y"])
    await stop(heard)


async def test_a_dropped_subscription_is_reported_lost_then_live_again(
    stores: list[KeyValueStore],
) -> None:
    channel = stores[0].keys.key("test", "chan")
    heard = follow(stores[0], channel)
    await eventually(lambda: heard.live)
    if isinstance(stores[0], EmbeddedStore):
        # In-process: nothing to drop; the subscription is live until the follower stops.
        await stores[1].publish(channel, "after")
        assert heard.states == [True] and heard.messages == [b"after"]
        await stop(heard)
        assert heard.states == [True, False]
        return
    assert await kill_subscribers(stores[0]) >= 1
    await eventually(lambda: heard.states[:3] == [True, False, True])
    await stores[1].publish(channel, "after")
    await eventually(lambda: heard.messages == [b"after"])
    await stop(heard)


async def kill_subscribers(kv: KeyValueStore) -> int:
    """Drop the subscriber connections of the test's Redis db (other suites share the
    server), or every cluster node's, as a restart or the network would."""
    assert isinstance(kv, RedisStore)
    if isinstance(kv.client, RedisCluster):
        result = await kv.client.client_kill_filter(
            _type="pubsub", target_nodes=RedisCluster.ALL_NODES
        )
        return sum(result.values()) if isinstance(result, dict) else int(result)
    db = int(kv.client.connection_pool.connection_kwargs.get("db", 0))
    ours = [c for c in await kv.client.client_list(_type="pubsub") if int(c["db"]) == db]
    for connection in ours:
        await kv.client.client_kill_filter(_id=connection["id"])
    return len(ours)
