"""`tollgate serve` with FastAGI workers (TOLLGATE_SERVE_WORKERS): several processes answer
on one port, every answer is a real grant from the one ledger, and no worker outlives the
serve process (a worker left behind would allow calls whose outcomes nobody collects)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rating.accounts import Account
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.e2e.rig import free_tcp_port
from tollgate.workers import WorkerSettings, default_workers

ROOT = Path(__file__).resolve().parents[2]
CALLS = 60


def metric(port: int, sample: str, wait_s: float = 15) -> float | None:
    """A sample of the process exporting on `port`; None when nothing answers there within
    `wait_s` (a loaded machine may be slow to answer one scrape)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


ALLOWED = 'tollgate_authorizations_total{decision="ALLOW",reason="OK",switch="fastagi"}'


def serve(
    settings: Settings, agi_port: int, metrics_port: int, workers: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TOLLGATE_PG_DSN": settings.pg_dsn,
        "TOLLGATE_REDIS_URL": settings.redis_url,
        "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(settings.keyspace.shards),
        "TOLLGATE_SWITCH_HOST": "test",
        "TOLLGATE_AGI_PORT": str(agi_port),
        "TOLLGATE_METRICS_PORT": str(metrics_port),
        "TOLLGATE_SERVE_WORKERS": str(workers),
        # no Asterisk writes it here: the tail finds no file yet, calls still work
        "TOLLGATE_OUTCOME_LOG": os.path.join(tempfile.mkdtemp(), "tollgate-outcomes.csv"),
        "TOLLGATE_ABUSE": "0",
        "TOLLGATE_CDR_WRITER": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def wait_until(what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def pids_on(port: int) -> set[int]:
    """Processes holding a listening TCP socket on `port` (from /proc: no tool needed)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].split(":")[1], 16) == port and cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(proc.name))
        except OSError:
            continue
    return pids


async def authorize(port: int, account: str, call_id: str) -> str:
    """What res_agi sends for the dialplan's authorize; returns tollgate's one command."""
    header = {
        "network_script": "authorize",
        "request": f"agi://127.0.0.1:{port}/authorize",
        "channel": "PJSIP/phone-a-00000001",
        "uniqueid": call_id,
        "callerid": "600100200",
        "rdnis": "unknown",
        "context": "tollgate-outbound",
        "extension": "601234567",
        "accountcode": account,
        "arg_1": f"{time.time():.3f}",
        "arg_2": "2",
    }
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("".join(f"agi_{k}: {v}\n" for k, v in header.items()) + "\n").encode())
        line = (await reader.readline()).decode()
        writer.write(b"200 result=1\n")
        await writer.drain()
        return line
    finally:
        writer.close()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    metrics = free_tcp_port()
    while not _bindable(metrics + 1):  # the worker exports on the next port
        metrics = free_tcp_port()
    yield free_tcp_port(), metrics


def test_workers_default_to_one_and_refuse_nonsense() -> None:
    assert WorkerSettings.from_env({}).workers == 1  # more only when asked for
    assert 1 <= default_workers() <= 4
    assert WorkerSettings.from_env({"TOLLGATE_SERVE_WORKERS": "3"}).workers == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="TOLLGATE_SERVE_WORKERS"):
            WorkerSettings.from_env({"TOLLGATE_SERVE_WORKERS": bad})


async def test_two_processes_share_the_port_and_the_ledger(
    svc: Services, make_account: AccountFactory, ports: tuple[int, int]
) -> None:
    account: Account = await make_account(balance=10**12)
    agi_port, metrics_port = ports
    proc = serve(svc.settings, agi_port, metrics_port, workers=2)
    try:
        await asyncio.to_thread(
            wait_until, "the worker listens", lambda: len(pids_on(agi_port)) == 2
        )
        assert proc.pid in pids_on(agi_port)
        answers = await asyncio.gather(
            *(authorize(agi_port, account.id, f"1764628800.{n}") for n in range(CALLS))
        )
        assert all(a.startswith('SET VARIABLE TOLLGATE_GRANT "ALLOW,OK,') for a in answers)
        # one reservation per call in the one ledger, whichever process answered
        assert len(await svc.ledger.open_calls(account.id)) == CALLS
        by_serve = metric(metrics_port, ALLOWED)
        by_worker = metric(metrics_port + 1, ALLOWED)
        assert by_serve is not None and by_worker is not None
        assert by_serve + by_worker == CALLS
        # the kernel spreads connections by their addresses: 60 all on one socket would
        # mean the worker is not sharing the port (odds 2**-59 otherwise)
        assert by_serve > 0 and by_worker > 0
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no chance to stop the worker itself
        proc.wait(10)
    # the kernel kills the worker with it (PR_SET_PDEATHSIG): nothing answers any more
    await asyncio.to_thread(
        wait_until, "the worker dies with serve", lambda: not pids_on(agi_port), 10
    )


async def test_a_stopped_serve_stops_its_workers(
    svc: Services, make_account: AccountFactory, ports: tuple[int, int]
) -> None:
    agi_port, metrics_port = ports
    proc = serve(svc.settings, agi_port, metrics_port, workers=3)
    try:
        await asyncio.to_thread(
            wait_until, "both workers listen", lambda: len(pids_on(agi_port)) == 3
        )
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert pids_on(agi_port) == set()  # nobody answers: Asterisk refuses calls (fail closed)
