"""`tollgate serve`: the long-running process next to an Asterisk.

Runs the FastAGI server, the ARI session controller (when TOLLGATE_ARI_URL is set), the
tail of Asterisk's outcome log (TOLLGATE_OUTCOME_LOG; with TOLLGATE_AMI_HOST it also drains
outcomes an older dialplan parked in AstDB), the
CDR writer (unless TOLLGATE_CDR_WRITER=0), abuse detection (unless TOLLGATE_ABUSE=0), the
reservation sweeper and a Prometheus endpoint. At start it brings Redis up to date from
PostgreSQL (decks, account settings, pending top-ups, accounts Redis lost).

With ARI the sweeper also hangs up the running outbound calls of suspended or closed
accounts (emergency calls never), whoever suspended them: serve is the process that holds
this switch's ARI (in docker-compose.yml only it shares Asterisk's loopback)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import replace

from prometheus_client import start_http_server
from redis.exceptions import RedisError

from abuse.runner import AbuseDetector
from abuse.settings import AbuseSettings
from cdr.writer import CdrWriter, WriterSettings
from core.env import SettingsError
from core.loop_lag import start_watch
from core.priority import PrioritySettings, apply_priority
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from rating.ledger import Ledger
from runtime.recovery import catch_up, repair_forever
from runtime.services import open_redis, services
from runtime.settings import Settings
from switch.agi import AgiSettings, FastAgiServer
from switch.ami import AmiSettings
from switch.ari import AriClient, AriSettings
from switch.cutoff import cut, to_cut
from switch.fastagi import FastAgiAdapter
from switch.outcome_log import ENV_PATH, OutcomeLog, OutcomeLogSettings
from switch.parking import ParkingLot
from switch.sessions import ControlSettings, SessionController
from tollgate.metrics import Metrics
from tollgate.workers import WorkerPool, WorkerSettings

log = logging.getLogger("tollgate.serve")


async def sweep_forever(
    ledger: Ledger,
    interval_s: float,
    metrics: Metrics,
    outcomes: OutcomeLog | None = None,
    ari: AriClient | None = None,
    held: Mapping[str, object] | None = None,
) -> None:
    """Release orphaned reservations; sample open calls and reserved credit for metrics;
    with ARI, hang up the running calls of accounts no longer active (but those in `held`,
    the session controller's, whose own watch ends them within a second).

    With an outcome log, only calls whose deadline passed before its last clean read to the
    end: until then their outcome may still be waiting in it, and expiring them would
    settle them on a guess."""
    while True:
        try:
            due: int | None = None
            if outcomes is not None:
                clear = outcomes.clear_since
                due = int(clear * 1000) if clear is not None else 0
            swept = await ledger.sweep_counted(due_before_ms=due)
            if swept.released:
                metrics.swept.inc(swept.released)
                metrics.swept_estimated.inc(swept.estimated)
                log.warning(
                    "expired %d reservation(s) whose outcome never came (%d charged on the "
                    "controller's answer)",
                    swept.released,
                    swept.estimated,
                )
            records = await ledger.open_sessions()
            metrics.ledger_sample(records)
            if ari is not None:
                others = [r for r in records if r.get("call_id", "") not in (held or {})]
                await cut_inactive(ledger, ari, others, metrics)
        except (RedisError, OSError, ConnectionError) as exc:
            log.error("sweeper: Redis unreachable: %s", exc)
        await asyncio.sleep(interval_s)


async def cut_inactive(
    ledger: Ledger, ari: AriClient, records: list[dict[str, str]], metrics: Metrics
) -> None:
    """A suspension decided off the call path (scheduler, operator, panel) reaches running
    calls here: the sweep already read the open calls, so this costs one pipelined status
    read of their accounts per sweep, and ARI requests only for calls to cut. Emergency and
    inbound calls are never cut (switch/cutoff.py); a call ARI refused is tried again at the
    next sweep."""
    calls = await to_cut(ledger, records)
    if not calls:
        return
    done = await cut(ledger, ari, calls)
    for _ in done.hung_up:
        metrics.session_event("hangup_suspended")
    if done.failed:
        log.error("sweeper: calls of inactive accounts not cut: %s", ", ".join(done.failed))


async def supervise(
    name: str, work: Callable[[], Awaitable[None]], metrics: Metrics, backoff_max_s: float = 10.0
) -> None:
    """Run a background task forever: if it dies, log why, count it and start it again."""
    delay = 0.5
    while True:
        started = time.monotonic()
        try:
            await work()
            log.error("background task %s returned; restarting it", name)
        except Exception:
            log.exception("background task %s died; restarting it in %.1f s", name, delay)
        metrics.task_restarts.labels(name).inc()
        delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, backoff_max_s)
        await asyncio.sleep(delay)


async def _no_hook(account: str) -> None:
    """Without ARI control, suspension reaches calls at their next authorization."""


async def serve(settings: Settings) -> None:
    # first, before the metrics server's thread starts: threads inherit the nice value
    nice = apply_priority(PrioritySettings.from_env())
    if nice is not None:
        log.info("running at nice %d", nice)
    metrics = Metrics()
    port = int(os.environ.get("TOLLGATE_METRICS_PORT", "9464"))
    if port:
        start_http_server(
            port, os.environ.get("TOLLGATE_METRICS_HOST", "127.0.0.1"), registry=metrics.registry
        )
    ari_settings = AriSettings.from_env()
    control = ControlSettings.from_env()
    ami_settings = AmiSettings.from_env()
    log_settings = OutcomeLogSettings.from_env()
    if not log_settings.enabled:
        # Every call's outcome reaches tollgate through Asterisk's outcome log: without it
        # calls would be allowed and never billed. Not starting means not listening, and
        # Asterisk refuses the calls (fail closed).
        raise SettingsError(
            ENV_PATH,
            "required: the path of the file Asterisk's cdr_custom appends call outcomes to"
            " (log/cdr-custom/tollgate-outcomes.csv), readable by tollgate",
        )
    async with services(settings) as s:
        moved = await s.ledger.upgrade_calls()
        if moved:
            log.info("moved %d call record(s) to their switch/call id keys", moved)
        done = await catch_up(s)
        log.info(
            "start-up sync: %d deck(s), %d ledger entries, rebuilt %s",
            done.decks,
            done.entries,
            list(done.rebuilt),
        )
        for r in done.repairs:
            metrics.repaired(r)
        # inbound calls are routed by Redis: bring the numbers' routes up to date (Redis
        # may have lost them, or numbers changed while no tollgate ran)
        assert s.pool is not None  # services() opened PostgreSQL
        routed = await NumberStore(s.pool, s.accounts, NumberingSettings.from_env()).publish()
        log.info("start-up sync: %d number(s) routed", routed)
        outcomes = OutcomeLog(
            log_settings,
            s.ledger,
            s.pool,
            # outcomes a dialplan from before the outcome log parked in AstDB
            legacy=ParkingLot(ami_settings, s.ledger, on_scan=metrics.parked_scan)
            if ami_settings.enabled
            else None,
            on_scan=metrics.outcome_scan,
            on_settled=metrics.carrier_outcome,
        )
        ari = AriClient(ari_settings) if ari_settings.enabled else None
        controller = (
            SessionController(
                ari,
                s.ledger,
                control,
                on_event=metrics.session_event,
                on_renewal=metrics.renewal,
                on_settled=metrics.carrier_outcome,
                outcomes=outcomes,
            )
            if ari is not None
            else None
        )
        if controller is not None:
            metrics.track_sessions(controller)
        adapter = FastAgiAdapter(
            s.ledger,
            slice_s=control.slice_s if controller is not None else None,
            on_decided=metrics.decided,
        )
        agi_settings = AgiSettings.from_env()
        workers = WorkerSettings.from_env()
        if workers.extra:
            agi_settings = replace(agi_settings, reuse_port=True)
        server = FastAgiServer(
            adapter.handlers(),
            agi_settings,
            on_event=metrics.agi_event,
            on_answered=metrics.agi_answered,
        )
        # What start-up loaded (decks, caches) lives as long as the process: out of the
        # collector's way, so full collections do not stall authorizations behind them.
        gc.collect()
        gc.freeze()
        await server.start()
        log.info("FastAGI listening on %s:%d, metrics on :%d", agi_settings.host, server.port, port)
        # Started after the start-up sync (workers need the decks in Redis) and after this
        # process bound the port (a port held by something else fails here, not in them).
        pool = WorkerPool(
            workers, on_exit=lambda index: metrics.task_restarts.labels("worker").inc()
        )
        pool.start()
        if workers.extra:
            log.info("%d FastAGI worker process(es) share the port", workers.extra)
        print(f"tollgate: FastAGI on {agi_settings.host}:{server.port}", flush=True)
        sweeper = asyncio.create_task(
            supervise(
                "sweeper",
                lambda: sweep_forever(
                    s.ledger,
                    settings.sweep_interval_s,
                    metrics,
                    outcomes,
                    ari,
                    controller.sessions if controller is not None else None,
                ),
                metrics,
            )
        )
        sessions = (
            asyncio.create_task(supervise("sessions", controller.run, metrics))
            if controller is not None
            else None
        )
        collecting = asyncio.create_task(supervise("outcomes", outcomes.run, metrics))
        repairer = asyncio.create_task(
            supervise(
                "repair",
                lambda: repair_forever(s, settings.repair_interval_s, metrics.repaired),
                metrics,
            )
        )
        lagging = start_watch(metrics.loop_late)
        if controller is not None:
            log.info(
                "ARI session control on %s (app %s, slices of %d s)",
                ari_settings.url,
                ari_settings.app,
                control.slice_s,
            )
        stop = asyncio.Event()
        # On a cluster the CDR writer and the detector get a client of their own: their
        # pipelines, when a master dies, make redis-py close every connection of the client
        # and sleep (at each retry), and the calls must not wait behind that.
        background = open_redis(settings) if settings.redis_mode == "cluster" else s.redis
        writer = None
        if os.environ.get("TOLLGATE_CDR_WRITER", "1") != "0":  # or run `tollgate cdr-writer`
            writer = CdrWriter(
                background,
                settings.keyspace,
                settings.pg_dsn,
                WriterSettings.from_env(),
                metrics.registry,
            )
        writing = asyncio.create_task(writer.run(stop)) if writer is not None else None
        detector = None
        if os.environ.get("TOLLGATE_ABUSE", "1") != "0":  # or run `tollgate abuse run`
            detector = AbuseDetector(
                replace(s, redis=background),
                AbuseSettings.from_env(),
                registry=metrics.registry,
                on_suspend=controller.hangup_account if controller is not None else _no_hook,
            )
        detecting = asyncio.create_task(detector.run(stop)) if detector is not None else None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await pool.close()
            for task in (sweeper, repairer, sessions, collecting, lagging):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            stop.set()
            for task in (writing, detecting):
                if task is not None:
                    with suppress(asyncio.CancelledError, TimeoutError):
                        await asyncio.wait_for(task, 10)
            if writer is not None:
                await writer.close()
            if detector is not None:
                await detector.close()
            if background is not s.redis:
                await background.aclose()
            await server.close()
            if ari is not None:
                await ari.close()
            log.info("stopped")
