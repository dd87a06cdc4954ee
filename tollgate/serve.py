"""`tollgate serve`: the long-running process next to an Asterisk.

Runs the FastAGI server, the reservation sweeper and a Prometheus endpoint. At start it
brings Redis up to date from PostgreSQL (decks, account settings, pending top-ups)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import suppress

from prometheus_client import start_http_server

from rating.deck_store import publish_all
from rating.ledger import Ledger
from switch.agi import AgiSettings, FastAgiServer
from switch.fastagi import FastAgiAdapter
from tollgate.metrics import Metrics
from tollgate.services import Services, services
from tollgate.settings import Settings

log = logging.getLogger("tollgate.serve")


async def sweep_forever(ledger: Ledger, interval_s: float, metrics: Metrics) -> None:
    while True:
        try:
            released = await ledger.sweep()
            if released:
                metrics.swept.inc(released)
                log.warning("released %d orphaned reservation(s)", released)
        except (OSError, ConnectionError) as exc:
            log.error("sweeper: Redis unreachable: %s", exc)
        await asyncio.sleep(interval_s)


async def catch_up(s: Services) -> None:
    """Redis may be new or stale: re-publish decks and re-apply what PostgreSQL knows."""
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        decks = await publish_all(conn, s.redis, s.settings.keyspace)
    applied = await s.accounts.sync_all()
    log.info("start-up sync: %d deck(s) published, %d ledger entr(y/ies) applied", decks, applied)


async def serve(settings: Settings) -> None:
    metrics = Metrics()
    port = int(os.environ.get("TOLLGATE_METRICS_PORT", "9464"))
    if port:
        start_http_server(
            port, os.environ.get("TOLLGATE_METRICS_HOST", "127.0.0.1"), registry=metrics.registry
        )
    async with services(settings) as s:
        await catch_up(s)
        adapter = FastAgiAdapter(s.ledger, on_decided=metrics.decided)
        agi_settings = AgiSettings.from_env()
        server = FastAgiServer(adapter.handlers(), agi_settings, on_event=metrics.agi_event)
        await server.start()
        log.info("FastAGI listening on %s:%d, metrics on :%d", agi_settings.host, server.port, port)
        print(f"tollgate: FastAGI on {agi_settings.host}:{server.port}", flush=True)
        sweeper = asyncio.create_task(sweep_forever(s.ledger, settings.sweep_interval_s, metrics))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await sweeper
            await server.close()
            log.info("stopped")
