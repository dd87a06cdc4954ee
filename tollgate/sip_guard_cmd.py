"""`tollgate sip guard`: Asterisk's failed SIP authentications (AMI security events,
switch.ami_security) into the guard (abuse.sip_guard), which locks logins and blocks
addresses. Runs next to its Asterisk (AMI on loopback), one per Asterisk."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

from abuse.sip_guard import GuardMetrics, GuardSettings, SipGuard
from core.cliout import print_json
from core.env import SettingsError
from customers.sip_settings import SipSettings
from runtime.services import Services
from switch.ami import AmiSettings
from switch.ami_security import AuthFailure, watch


async def cmd_guard(s: Services, args: argparse.Namespace) -> None:
    from core.exporter import standalone_metrics

    ami = AmiSettings.from_env()
    if not ami.enabled:
        raise SettingsError("TOLLGATE_AMI_HOST", "required: security events come over AMI")
    assert s.pool is not None
    guard = SipGuard(
        s.pool,
        GuardSettings.from_env(),
        SipSettings.from_env(),
        GuardMetrics(standalone_metrics()),
        s.accounts,
    )
    queue: asyncio.Queue[AuthFailure] = asyncio.Queue(maxsize=10_000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(watch(ami, queue))
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getting = asyncio.create_task(queue.get())
            await asyncio.wait({getting, stopping, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()  # re-raises what killed it
            if not getting.done():
                getting.cancel()
                continue
            failure = getting.result()
            # the event's instant is when it reached us (AMI events carry no usable clock)
            await guard.observe(
                failure.kind, failure.login, failure.address, int(time.time() * 1000)
            )
    finally:
        for task in (watcher, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    print_json({"stopped": True})
