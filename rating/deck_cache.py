"""Compiled decks held in process memory for the hot path, refreshed from Redis.

A deck switch in Redis is seen within `refresh_s`; every grant records the version it used."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rating.deck import Deck
from rating.deck_store import fetch_from_redis
from rating.keys import Keyspace

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Head:
    version: int | None
    checked: float


class DeckCache:
    def __init__(self, redis: Redis, keys: Keyspace, refresh_s: float = 1.0) -> None:
        self._redis = redis
        self._keys = keys
        self._refresh_s = refresh_s
        self._heads: dict[str, _Head] = {}
        self._decks: dict[tuple[str, int], Deck] = {}

    async def current(self, name: str) -> Deck | None:
        head = self._heads.get(name)
        now = time.monotonic()
        if head is None or now - head.checked >= self._refresh_s:
            raw: bytes | str | int | None
            try:
                raw = await self._redis.get(self._keys.deck_current(name))
            except (RedisError, OSError):
                # On a cluster the deck's pointer lives on one master: while that master
                # fails over, every account's calls would fail with it. The version known
                # a moment ago still prices them (a deck switch is seen a little later).
                if head is None or head.version is None:
                    raise
                log.warning("deck %s: current version unreadable, keeping %s", name, head.version)
                raw = head.version
            head = _Head(int(raw) if raw is not None else None, now)
            self._heads[name] = head
        if head.version is None:
            return None
        return await self.version(name, head.version)

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
