"""A Redis client whose commands are packed by hiredis (C) instead of redis-py's Python packer.

Profiling the authorize path showed redis-py's `pack_command` as its largest single cost: the
authorize script takes ~30 arguments and each one is encoded and joined in Python. hiredis
(already the reply parser) packs the same RESP bytes in C. Arguments the two could encode
differently (floats, anything but str/bytes/int) keep redis-py's packer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis[hiredis] not installed: redis-py's packer does it all
    _hiredis_pack = None

_PLAIN = frozenset((str, bytes, int))


class HiredisPackConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if (
            _hiredis_pack is None
            or not isinstance(first, str)
            or " " in first  # "CLIENT SETINFO": redis-py splits it into words
            or not _PLAIN.issuperset(map(type, args))  # bool is an int: excluded by type()
        ):
            return list(super().pack_command(*args))
        return [_hiredis_pack(args)]


def redis_from_url(url: str, **kwargs: Any) -> Redis:
    """`Redis.from_url`, packing with hiredis on plain TCP (redis://); TLS and Unix sockets
    keep their own connection classes."""
    if _hiredis_pack is not None and urlsplit(url).scheme == "redis":
        kwargs.setdefault("connection_class", HiredisPackConnection)
    return Redis.from_url(url, **kwargs)
