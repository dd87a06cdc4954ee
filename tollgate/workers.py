"""Several processes answering FastAGI on one port: `tollgate serve` and its workers.

One Python process tops out well below what Redis can do for the authorize script (the
event loop, the Redis client and the AGI protocol are all Python), so `tollgate serve` starts
`TOLLGATE_SERVE_WORKERS - 1` more processes that bind the same FastAGI port with
SO_REUSEPORT; the kernel spreads Asterisk's connections over all of them. A worker answers
FastAGI only (authorize, finish, inbound: each a single idempotent ledger call). Everything
that must run once per switch (start-up sync, the AMI collector, ARI session control, the
sweeper, the repair loop, the CDR writer, abuse detection) stays in the `serve` process,
which starts the workers only after its start-up sync and stops them when it stops. A worker
dies with it (PR_SET_PDEATHSIG on Linux, else it notices within a second): no worker keeps
authorizing calls for a switch whose outcomes nobody collects.

Worker N (1, 2, ...) exports its metrics on `TOLLGATE_METRICS_PORT + N`."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace

from core.env import EnvReader, SettingsError
from runtime.services import services
from runtime.settings import Settings

log = logging.getLogger("tollgate.workers")

_PR_SET_PDEATHSIG = 1
# Most worker processes a switch gets by default: past the cores Asterisk and Redis need,
# more processes only add context switches.
_DEFAULT_MAX = 4


def default_workers() -> int:
    """What to set for throughput: one process per core, at most 4 (Asterisk and Redis share
    the machine). Not the default: with one process, a frozen `serve` refuses every call and
    one metrics port holds every counter."""
    return max(1, min(os.cpu_count() or 1, _DEFAULT_MAX))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("at least 1")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    workers: int = 1  # processes answering FastAGI, the serve process included
    metrics_port: int = 9464  # worker N exports on metrics_port + N (0: none)
    restart_backoff_max_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        read = EnvReader("TOLLGATE_", env)
        return cls(
            workers=read.get("SERVE_WORKERS", _positive, 1),
            metrics_port=read.get("METRICS_PORT", int, 9464),
        )

    @property
    def extra(self) -> int:
        """Processes started beside the serve process."""
        return self.workers - 1


class WorkerPool:
    """Keeps workers 1..N-1 running as child processes; restarts one that dies."""

    def __init__(
        self, settings: WorkerSettings, *, on_exit: Callable[[int], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_exit = on_exit or (lambda index: None)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for index in range(1, self.settings.workers):
            self._tasks.append(asyncio.create_task(self._keep(index)))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tollgate.cli",
            "serve-worker",
            "--index",
            str(index),
            "--parent",
            str(os.getpid()),
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _keep(self, index: int) -> None:
        delay = 0.5
        while True:
            proc = await self._spawn(index)
            self._procs[index] = proc
            log.info("FastAGI worker %d started (pid %d)", index, proc.pid)
            code = await proc.wait()
            self.on_exit(index)
            log.error("FastAGI worker %d exited with %s; restarting in %.1f s", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.restart_backoff_max_s)

    async def close(self) -> None:
        """Stop restarting, ask every worker to stop, kill those that do not within 10 s."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        live = [p for p in self._procs.values() if p.returncode is None]
        for proc in live:
            with suppress(ProcessLookupError):
                proc.terminate()
        for proc in live:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _die_with(parent: int) -> None:
    """Be killed by the kernel when the serve process dies, even by SIGKILL (Linux)."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        raise SystemExit(f"serve process {parent} is gone")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Where PR_SET_PDEATHSIG does not exist: notice within a second."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            break
    log.error("serve process %d is gone: stopping", parent)
    stop.set()


async def serve_worker(settings: Settings, index: int, parent: int) -> None:
    """One worker: FastAGI on the shared port, its metrics, nothing else."""
    from prometheus_client import start_http_server

    from core.loop_lag import start_watch
    from switch.agi import AgiSettings, FastAgiServer
    from switch.ari import AriSettings
    from switch.fastagi import FastAgiAdapter
    from switch.sessions import ControlSettings
    from tollgate.metrics import Metrics

    _die_with(parent)
    workers = WorkerSettings.from_env()
    if index < 1:
        raise SettingsError("--index", "workers are numbered from 1 (0 is the serve process)")
    metrics = Metrics()
    if workers.metrics_port:
        port = workers.metrics_port + index
        try:
            start_http_server(
                port,
                os.environ.get("TOLLGATE_METRICS_HOST", "127.0.0.1"),
                registry=metrics.registry,
            )
        except OSError as exc:
            # Authorizations matter more than this worker's metrics.
            log.error("worker %d: no metrics on :%d: %s", index, port, exc)
    # Grants must read the same with every process: slices and Stasis when ARI is on.
    slice_s = ControlSettings.from_env().slice_s if AriSettings.from_env().enabled else None

    agi = replace(AgiSettings.from_env(), reuse_port=True)
    async with services(settings, pg=False) as s:
        adapter = FastAgiAdapter(s.ledger, slice_s=slice_s, on_decided=metrics.decided)
        server = FastAgiServer(
            adapter.handlers(), agi, on_event=metrics.agi_event, on_answered=metrics.agi_answered
        )
        gc.collect()
        gc.freeze()
        await server.start()
        log.info("FastAGI worker %d listening on %s:%d", index, agi.host, server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.create_task(_watch_parent(parent, stop))
        lagging = start_watch(metrics.loop_late)
        try:
            await stop.wait()
        finally:
            for task in (watcher, lagging):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            await server.close()
            log.info("FastAGI worker %d stopped", index)
