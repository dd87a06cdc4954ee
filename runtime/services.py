"""The resources a tollgate process holds, created in one place and passed explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from core.redis_fast import redis_from_url
from rating.account_store import AccountStore
from rating.deck_cache import DeckCache
from rating.ledger import Ledger
from runtime.settings import Settings


class ServiceUnavailable(RuntimeError):
    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"cannot reach {what}: {why}")
        self.what = what


@dataclass
class Services:
    settings: Settings
    redis: Redis
    ledger: Ledger
    pool: asyncpg.Pool | None = None

    @property
    def accounts(self) -> AccountStore:
        if self.pool is None:
            raise RuntimeError("PostgreSQL was not opened for this command")
        return AccountStore(self.pool, self.ledger)


def open_redis(settings: Settings) -> Redis:
    return redis_from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=8, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable("PostgreSQL", str(exc)) from None


@asynccontextmanager
async def services(settings: Settings, *, pg: bool = True) -> AsyncIterator[Services]:
    redis = open_redis(settings)
    try:
        try:
            await redis.ping()
        except (OSError, ConnectionError) as exc:
            raise ServiceUnavailable("Redis", str(exc)) from None
        except Exception as exc:  # redis-py wraps socket errors in its own classes
            if type(exc).__module__.startswith("redis"):
                raise ServiceUnavailable("Redis", str(exc)) from None
            raise
        decks = DeckCache(redis, settings.keyspace, settings.deck_refresh_s)
        ledger = Ledger(redis, settings.keyspace, decks, settings.ledger)
        pool = await open_pool(settings) if pg else None
        try:
            yield Services(settings, redis, ledger, pool)
        finally:
            if pool is not None:
                await pool.close()
    finally:
        await redis.aclose()
