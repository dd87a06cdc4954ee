"""The carriers and routing rules held in process memory for the hot path, refreshed from
their copy in Redis (like the deck cache): a change is seen within `refresh_s`."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rating.carrier_store import mirrored_carriers, mirrored_fx, mirrored_rules
from rating.carriers import Carrier
from rating.fx import NO_FX, FxTable
from rating.keys import Keyspace
from rating.route_rules import RouteRule

log = logging.getLogger(__name__)


class CarrierCache:
    def __init__(self, redis: Redis, keys: Keyspace, refresh_s: float = 1.0) -> None:
        self._redis = redis
        self._keys = keys
        self._refresh_s = refresh_s
        self._carriers: list[Carrier] | None = None
        self._rules: list[RouteRule] = []
        self._fx: FxTable = NO_FX
        self._checked = -float("inf")

    async def current(self) -> tuple[list[Carrier], list[RouteRule]]:
        """Every carrier (none: the single-trunk setup) and every routing rule."""
        now = time.monotonic()
        if now - self._checked >= self._refresh_s:
            try:
                found = await mirrored_carriers(self._redis, self._keys)
                if found is None and self._carriers:
                    # the copy vanished (Redis lost its data; carriers are never deleted):
                    # keep routing and checking margins with the last one until the repair
                    # loop writes it again, rather than sending calls to the single trunk
                    log.warning("carriers' copy missing in Redis: keeping the one read before")
                else:
                    self._carriers = found or []
                    self._rules = await mirrored_rules(self._redis, self._keys)
                    self._fx = await mirrored_fx(self._redis, self._keys)
            except (RedisError, OSError):
                if self._carriers is None:  # never read: fail closed, the caller refuses
                    raise
                log.warning("carriers unreadable in Redis: keeping the copy read before")
            self._checked = now
        return self._carriers or [], self._rules

    @property
    def fx(self) -> FxTable:
        """The exchange rates read with the carriers by the last `current()`."""
        return self._fx
