"""Per-token rate limiting in Redis (GCRA), so the limit holds across panel processes.

One key per token holds its "theoretical arrival time"; the script reads Redis's own clock,
so processes on hosts with skewed clocks still agree."""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1] = the token's key; ARGV = emission interval (µs), burst (requests)
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: int  # whole seconds, as Retry-After wants; 0 when allowed


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, rate_per_s: float, burst: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.interval_us = max(1, round(1_000_000 / rate_per_s))
        self.burst = burst
        self._script = redis.register_script(GCRA)

    def key(self, subject: str) -> str:
        return f"{self.prefix}:panel:rl:{subject}"

    async def hit(self, subject: str) -> Verdict:
        allowed, wait_us = await self._script(
            keys=[self.key(subject)], args=[self.interval_us, self.burst]
        )
        if int(allowed):
            return Verdict(True, 0)
        return Verdict(False, max(1, math.ceil(int(wait_us) / 1_000_000)))
