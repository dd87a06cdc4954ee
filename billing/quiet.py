"""The ledger fields a repeat bill run reads for an account marked clean (marks.py): its
balance and last entry's number, for a page of accounts at once.

On one Redis a single read-only script returns them for the whole page: a pipeline of one
HMGET per account costs the client more per reply than the server's work (redis-py parses
each reply on its own). A cluster holds a page's keys in many slots, which one script may
not span: there it is one HMGET per account, pipelined (grouped per node by the client)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from rating.repair import DRIFT_MONEY

# KEYS: account hashes; ARGV: the two fields. Each key's two values in order; a missing
# one as false (a Lua table stops at its first nil), which reaches the client as nil.
PAGE_MONEY = """
local out = {}
for i, key in ipairs(KEYS) do
    local v = redis.call('HMGET', key, ARGV[1], ARGV[2])
    out[2 * i - 1] = v[1] or false
    out[2 * i] = v[2] or false
end
return out
"""


async def money_of(redis: Redis | RedisCluster, keys: Sequence[str]) -> list[Any]:
    """[balance, ledger_seq] (bytes or None) of each key, or the error Redis gave for it."""
    if not keys:
        return []
    if isinstance(redis, RedisCluster):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, list(DRIFT_MONEY))
            return list(await pipe.execute(raise_on_error=False))
    flat = await redis.eval(PAGE_MONEY, len(keys), *keys, *DRIFT_MONEY)
    return [[flat[i], flat[i + 1]] for i in range(0, 2 * len(keys), 2)]
