"""Failed authentications per client address, counted in Redis and checked before the
token lookup, so guessing tokens costs the guesser a 429 and PostgreSQL nothing.

A fixed window per address: `limit` failures, then every request from that address is
refused until the window (started by its first failure) runs out. Behind a reverse proxy the
client is the address the proxy appended to X-Forwarded-For, believed only from the proxies
the settings name."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

from aiohttp import web
from redis.asyncio import Redis

# KEYS[1] = the address's key; ARGV[1] = window (ms). Count a failure; the first one starts
# the window.
FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks ("127.0.0.1", "172.16.0.0/12") of trusted proxies."""
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """Who is asking: the peer, or the last X-Forwarded-For hop when the peer is a trusted
    proxy (earlier hops are the client's own say and prove nothing)."""
    peer = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if not forwarded or not _within(peer, trusted):
        return peer
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer  # a proxy of ours writes an address; anything else is not believed


def _within(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class AuthGuard:
    def __init__(self, redis: Redis, prefix: str, limit: int, window_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_ms = window_s * 1000
        self._failed = redis.register_script(FAILED)

    def key(self, address: str) -> str:
        return f"{self.prefix}:panel:authfail:{address}"

    async def blocked(self, address: str) -> int:
        """Seconds `address` must wait before trying again; 0 when it may try now."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.key(address))
            pipe.pttl(self.key(address))
            count, ttl_ms = await pipe.execute()
        if count is None or int(count) < self.limit:
            return 0
        return max(1, math.ceil(int(ttl_ms) / 1000))

    async def failed(self, address: str) -> None:
        await self._failed(keys=[self.key(address)], args=[self.window_ms])
