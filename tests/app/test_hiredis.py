"""redis-py parses Redis replies with hiredis (a pinned dependency): the store's
connections get the hiredis parser, not redis-py's pure-Python one."""

from __future__ import annotations

from redis._parsers import _AsyncHiredisParser
from redis.utils import HIREDIS_AVAILABLE

from app.kv import Keyspace, RedisStore


async def test_the_redis_store_parses_replies_with_hiredis() -> None:
    assert HIREDIS_AVAILABLE
    store = RedisStore("redis://127.0.0.1:6379/0", Keyspace("hiredis"))
    try:
        connection = store.client.connection_pool.make_connection()
        assert isinstance(connection._parser, _AsyncHiredisParser)
    finally:
        await store.close()
