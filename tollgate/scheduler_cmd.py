"""`tollgate scheduler [--once] [--now ISO]`: the scheduler's process loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from datetime import UTC, datetime

from core.cliout import CliError, print_json
from runtime.services import Services
from tollgate.scheduler import SchedulerMetrics, SchedulerSettings, tick


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)  # the edge reads the clock; tick() takes it as an argument
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--now: not an ISO 8601 date-time: {text!r}") from None
    if at.tzinfo is None:
        raise CliError(f"--now: give a zone (e.g. {text}+01:00 or Z)")
    return at.astimezone(UTC)


async def cmd_scheduler(s: Services, args: argparse.Namespace) -> None:
    from core.exporter import standalone_metrics

    settings = SchedulerSettings.from_env()
    metrics = SchedulerMetrics(standalone_metrics())
    if args.once or args.now:
        print_json(await tick(s, settings, metrics, _now(args.now)))
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        await tick(s, settings, metrics, _now(None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.interval_s)
    print_json({"stopped": True})
