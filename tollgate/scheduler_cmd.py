"""`tollgate scheduler [--once] [--now ISO]`: the scheduler's process loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from core.cliout import now_of, print_json
from runtime.services import Services
from tollgate.scheduler import SchedulerMetrics, SchedulerSettings, tick


async def cmd_scheduler(s: Services, args: argparse.Namespace) -> None:
    from core.exporter import standalone_metrics

    settings = SchedulerSettings.from_env()
    metrics = SchedulerMetrics(standalone_metrics())
    if args.once or args.now:
        print_json(await tick(s, settings, metrics, now_of(args.now)))
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        await tick(s, settings, metrics, now_of(None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.interval_s)
    print_json({"stopped": True})
