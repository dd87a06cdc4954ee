"""hiredis packs the same RESP bytes as redis-py for the arguments it is given."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from core.redis_fast import HiredisPackConnection, redis_from_url

ARGS: list[tuple[object, ...]] = [
    ("EVALSHA", "a" * 40, 2, "k:{1}", b"k:{2}", "zażółć", "", 0, -17, 10**15),
    ("GET", "key"),
    ("CLIENT SETINFO", "LIB-NAME", "redis-py"),  # multi-word: redis-py's own packer
    ("SET", "k", 1.1),  # floats: redis-py's own packer
]


@pytest.mark.parametrize("args", ARGS)
def test_packed_bytes_are_redis_pys(args: tuple[object, ...]) -> None:
    ours = b"".join(HiredisPackConnection().pack_command(*args))
    theirs = b"".join(Connection().pack_command(*args))
    assert ours == theirs


def test_only_plain_tcp_urls_get_the_hiredis_packer() -> None:
    plain = redis_from_url("redis://127.0.0.1:6379/0")
    assert plain.connection_pool.connection_class is HiredisPackConnection
    tls = redis_from_url("rediss://127.0.0.1:6380/0")
    assert tls.connection_pool.connection_class is not HiredisPackConnection
