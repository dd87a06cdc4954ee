"""`tollgate notify ...` handlers: `async (Services, argparse.Namespace)`, one JSON document
on stdout each."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import aiohttp

from core.cliout import CliError, bad_input, now_of, print_json
from notify import contacts
from notify.errors import NotifyError
from notify.notices import list_notices
from notify.settings import NotifySettings, parse_thresholds
from notify.worker import tick
from runtime.services import Services


async def cmd_run(s: Services, args: argparse.Namespace) -> None:
    from core.exporter import standalone_metrics
    from notify.metrics import NotifyMetrics

    settings = NotifySettings.from_env()
    metrics = NotifyMetrics(standalone_metrics())
    async with aiohttp.ClientSession() as session:
        if args.once or args.now:
            print_json(await tick(s, settings, now_of(args.now), session, metrics))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            await tick(s, settings, now_of(None), session, metrics)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.interval_s)
    print_json({"stopped": True})


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        found = await list_notices(conn, args.account, args.status, args.limit)
    print_json([n.as_dict() for n in found])


async def cmd_set(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    try:
        thresholds = parse_thresholds(args.thresholds) if args.thresholds else ()
    except ValueError as exc:
        raise CliError(f"--thresholds: {exc}") from None
    contact = contacts.Contact(
        args.account, args.language, args.email, args.webhook, thresholds, tuple(args.opt_out)
    )
    with bad_input(NotifyError):
        async with s.pool.acquire() as conn:
            stored = await contacts.put(conn, contact, now_of(args.now))
    print_json(stored.as_dict())


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json((await contacts.get(conn, args.account)).as_dict())
