"""The panel's resources: one typed AppKey and one cleanup context each.

Each context opens its resource at start-up and closes it at shutdown, in reverse order;
background tasks are started here too and cancelled cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from panel_api.auth_guard import AuthGuard, Network, networks
from panel_api.export_gate import ExportGate
from panel_api.logins import LoginPolicy, LoginStore
from panel_api.metrics import METRICS
from panel_api.password_reset import PasswordResets, ResetPolicy
from panel_api.ratelimit import RateLimiter
from panel_api.settings import PanelSettings
from panel_api.tokens import LastUsed, TokenStore
from rating.deck_cache import DeckCache
from rating.ledger import Ledger
from runtime.services import Services, ServiceUnavailable, open_pool, open_redis
from runtime.settings import Settings
from switch.ari import AriClient, AriSettings

log = logging.getLogger("tollgate.panel")

SETTINGS = web.AppKey("settings", Settings)
PANEL = web.AppKey("panel", PanelSettings)
ARI_SETTINGS = web.AppKey("ari_settings", AriSettings)
REDIS = web.AppKey("redis", Redis)
LIMITER = web.AppKey("limiter", RateLimiter)
POOL = web.AppKey("pool", asyncpg.Pool)
EXPORT_GATE = web.AppKey("export_gate", ExportGate)
AUTH_GUARD = web.AppKey("auth_guard", AuthGuard)
TRUSTED = web.AppKey("trusted", tuple[Network, ...])
TOKENS = web.AppKey("tokens", TokenStore)
LOGINS = web.AppKey("logins", LoginStore)
RESETS = web.AppKey("resets", PasswordResets)
LAST_USED = web.AppKey("last_used", LastUsed)
SERVICES = web.AppKey("services", Services)
ARI = web.AppKey("ari", AriClient)  # set only when TOLLGATE_ARI_URL is


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, panel = app[SETTINGS], app[PANEL]
    redis = open_redis(settings)
    try:
        await redis.ping()
    except (OSError, RedisError) as exc:
        await redis.aclose()
        raise ServiceUnavailable("Redis", str(exc)) from None
    app[REDIS] = redis
    app[LIMITER] = RateLimiter(redis, settings.keyspace.prefix, panel.rate_per_s, panel.burst)
    app[AUTH_GUARD] = AuthGuard(
        redis, settings.keyspace.prefix, panel.auth_failures, panel.auth_failure_window_s
    )
    app[TRUSTED] = networks(panel.trusted_proxies)
    yield
    await redis.aclose()


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Two pools: interactive requests' and downloads', so downloads cannot take them all."""
    settings, panel = app[SETTINGS], app[PANEL]
    pool = await open_pool(settings, acquire_timeout_s=panel.pool_acquire_timeout_s)
    try:
        exports = await open_pool(
            settings, size=panel.export_pool_size, acquire_timeout_s=panel.pool_acquire_timeout_s
        )
    except BaseException:
        await pool.close()
        raise
    app[POOL] = pool
    app[TOKENS] = TokenStore(pool)
    app[LOGINS] = LoginStore(
        pool, LoginPolicy(panel.login_failures, panel.login_lock_s, panel.session_s)
    )
    app[RESETS] = PasswordResets(pool, ResetPolicy(panel.reset_ttl_s, panel.reset_per_hour))
    app[EXPORT_GATE] = ExportGate(
        exports, panel.exports_per_token, panel.send_timeout_s, panel.send_buffer_bytes
    )
    yield
    # a download still running holds an export connection: terminate rather than wait
    exports.terminate()
    await pool.close()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """The ledger and account store, over the Redis and pool opened above."""
    settings, redis = app[SETTINGS], app[REDIS]
    decks = DeckCache(redis, settings.keyspace, settings.deck_refresh_s)
    ledger = Ledger(redis, settings.keyspace, decks, settings.ledger)
    app[SERVICES] = Services(settings, redis, ledger, app[POOL])
    yield


async def ari_ctx(app: web.Application) -> AsyncIterator[None]:
    ari_settings = app[ARI_SETTINGS]
    if not ari_settings.enabled:
        yield
        return
    ari = AriClient(ari_settings)
    app[ARI] = ari
    yield
    await ari.close()


async def last_used_ctx(app: web.Application) -> AsyncIterator[None]:
    """Flush which tokens were used, every few seconds and once more at shutdown."""
    last_used = LastUsed(app[TOKENS])
    app[LAST_USED] = last_used
    interval = app[PANEL].last_used_flush_s

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await last_used.flush()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("could not record token use: %s", exc)  # kept for the next round

    task = asyncio.create_task(loop(), name="panel-last-used")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    try:
        await last_used.flush()
    except (OSError, asyncpg.PostgresError) as exc:
        log.warning("could not record token use at shutdown: %s", exc)


async def metrics_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """/metrics on its own port, away from the API that customers reach."""
    panel = app[PANEL]
    if not panel.metrics_port:
        yield
        return
    registry = app[METRICS].registry

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    side = web.Application()
    side.router.add_get("/metrics", metrics)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, panel.metrics_host, panel.metrics_port).start()
    yield
    await runner.cleanup()
