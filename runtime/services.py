"""The resources a tollgate process holds, created in one place and passed explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from redis.asyncio import Redis

from core.redis_cluster import cluster_from_url
from core.redis_fast import redis_from_url
from core.redis_pipe import CommandPipe
from rating.account_store import AccountStore
from rating.carrier_cache import CarrierCache
from rating.deck_cache import DeckCache
from rating.ledger import Ledger
from rating.retag import ensure_layout
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

    @property
    def postgres(self) -> asyncpg.Pool:
        """The pool, for a command that needs PostgreSQL (it was opened for it)."""
        if self.pool is None:
            raise RuntimeError("PostgreSQL was not opened for this command")
        return self.pool


class BoundedPool(asyncpg.Pool):
    """A pool whose every acquire (also a bare pool.fetch) gives up after a timeout: a
    process that cannot get a connection soon answers "busy" instead of queueing forever."""

    def __init__(self, dsn: str, *, acquire_timeout_s: float | None, **kwargs: Any) -> None:
        super().__init__(dsn, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


def open_redis(settings: Settings) -> Redis:
    """The one Redis client factory of every process: a plain client, or with
    `TOLLGATE_REDIS_MODE=cluster` a cluster client seeded from the URL's node."""
    if settings.redis_mode == "cluster":
        return cluster_from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return redis_from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)


async def open_pool(
    settings: Settings, *, size: int = 8, acquire_timeout_s: float | None = None
) -> asyncpg.Pool:
    """A pool of up to `size` connections; with `acquire_timeout_s`, waiting for one longer
    raises TimeoutError (asyncpg's create_pool takes no pool class, hence the constructor)."""
    pool = BoundedPool(
        settings.pg_dsn,
        acquire_timeout_s=acquire_timeout_s,
        min_size=1,
        max_size=size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=5,
    )
    try:
        return await pool
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
        await ensure_layout(redis, settings.keyspace)
        decks = DeckCache(redis, settings.keyspace, settings.deck_refresh_s)
        # The pipe speaks to one node; a cluster routes per slot, so it gets redis-py's client.
        plain = settings.redis_pipeline and settings.redis_mode == "standalone"
        pipe = CommandPipe.from_url(settings.redis_url) if plain else None
        money_pipe = pipe.sibling() if pipe is not None and settings.ledger.wait_replicas else None
        carriers = CarrierCache(redis, settings.keyspace, settings.deck_refresh_s)
        ledger_settings = settings.ledger
        if settings.redis_mode == "cluster":  # a script keeps to one slot: see LedgerSettings
            ledger_settings = replace(ledger_settings, carrier_capacity=False)
        ledger = Ledger(
            redis,
            settings.keyspace,
            decks,
            ledger_settings,
            pipe=pipe,
            money_pipe=money_pipe,
            carriers=carriers,
        )
        pool = await open_pool(settings) if pg else None
        try:
            yield Services(settings, redis, ledger, pool)
        finally:
            if pool is not None:
                await pool.close()
            for opened in (pipe, money_pipe):
                if opened is not None:
                    await opened.close()
    finally:
        await redis.aclose()
