"""Compiled decks held in process memory for the hot path, refreshed from Redis.

Which version prices a call is decided by the call's start: the highest version whose
effective instant has come (the deck's schedule in Redis, published with the version
itself), so a scheduled price change switches at its instant in every process at once,
however stale the cache. A version published just now is seen within `refresh_s`; every
grant records the version it used. A deck published without a schedule (before effective
dates) is priced by its `current` pointer."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rating.deck import Deck
from rating.deck_draft import epoch_ms
from rating.deck_store import fetch_from_redis
from rating.keys import Keyspace

log = logging.getLogger(__name__)


UNREADABLE_PAUSE_S = 1.0  # after a failed read of a deck's pointer, the known version holds


@dataclass(slots=True)
class _Head:
    version: int | None  # the `current` pointer
    checked: float
    # (effective epoch ms, version), by version, newest first
    schedule: list[tuple[int, int]] = field(default_factory=list)

    def at(self, at_ms: int) -> int | None:
        """The highest version in force at `at_ms` (a newer one supersedes any older one)."""
        if not self.schedule:
            return self.version
        for effective_ms, version in self.schedule:
            if effective_ms <= at_ms:
                return version
        return None


class DeckCache:
    def __init__(self, redis: Redis, keys: Keyspace, refresh_s: float = 1.0) -> None:
        self._redis = redis
        self._keys = keys
        self._refresh_s = refresh_s
        self._heads: dict[str, _Head] = {}
        self._decks: dict[tuple[str, int], Deck] = {}

    async def current(self, name: str, at: datetime | None = None) -> Deck | None:
        """The version pricing a call that starts at `at` (the ledger passes its instant;
        default: the wall clock)."""
        head = self._heads.get(name)
        now = time.monotonic()
        if head is None or now - head.checked >= self._refresh_s:
            try:
                head = await self._read(name, now)
            except (RedisError, OSError):
                # On a cluster the deck's pointer lives on one master: while that master
                # fails over, every account's calls would fail with it. The version known
                # a moment ago still prices them (a deck switch is seen a little later).
                if head is None or head.version is None:
                    raise
                log.warning("deck %s: current version unreadable, keeping %s", name, head.version)
                # and not read again for a while, whatever refresh_s: each failed read makes
                # the cluster client read the cluster's map and reconnect every node
                retry_at = now + UNREADABLE_PAUSE_S - self._refresh_s
                head = _Head(head.version, retry_at, head.schedule)
            self._heads[name] = head
        at_ms = epoch_ms(datetime.now(UTC) if at is None else at)
        version = head.at(at_ms)
        if version is None:
            return None
        return await self.version(name, version)

    async def _read(self, name: str, now: float) -> _Head:
        # Two commands, not a pipeline: on a cluster, a pipeline that meets a dead master
        # closes every connection of the client and sleeps 0.25 s, at each of its retries
        # (redis-py 8.1 ClusterPipeline). Read on every call's path, that stalled calls of
        # accounts on the healthy masters for the whole failover (6.7-8.2 s).
        raw = await self._redis.get(self._keys.deck_current(name))
        schedule = await self._redis.hgetall(self._keys.deck_schedule(name))
        entries = sorted(((int(v), int(ms)) for v, ms in schedule.items()), reverse=True)
        return _Head(int(raw) if raw is not None else None, now, [(ms, v) for v, ms in entries])

    async def version(self, name: str, version: int) -> Deck | None:
        deck = self._decks.get((name, version))
        if deck is None:
            deck = await fetch_from_redis(self._redis, self._keys, name, version)
            if deck is None:
                return None
            if len(self._decks) > 64:  # old versions are only needed for late finishes
                self._decks.pop(next(iter(self._decks)))
            self._decks[(name, version)] = deck
        return deck

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._heads.clear()
        else:
            self._heads.pop(name, None)
