"""SIP calls at a fixed rate through a real Asterisk: once through tollgate's dialplan (FastAGI
authorize against `tollgate serve`, the outcome written to the outcome log by cdr_custom and
tailed by tollgate), once
through an identical dialplan without tollgate, in the same run. Prints calls/s sustained,
failed calls, post-dial delay (INVITE -> 180) p50/p99 and Asterisk's CPU time per call for
both, and the ratios. Several rates (`--rate 50,100,150`) run one after the other on the same
Asterisk and tollgate.

    .venv/bin/python bench/e2e_calls.py [--rate 20[,40...]] [--calls 300] [--hold-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from core import db  # noqa: E402
from rating.accounts import Account  # noqa: E402
from rating.deck import load_deck  # noqa: E402
from rating.deck_store import import_deck, publish  # noqa: E402
from rating.keys import Keyspace  # noqa: E402
from runtime.services import services  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from tests.e2e.rig import AsteriskRig, RigConfig, SippCarrier, free_tcp_port, free_udp_port  # noqa: E402

ADMIN_DSN = "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate"
# the benchmark's own database, named per run so that runs side by side do not collide
BENCH_DB = f"tollgate_bench_{uuid.uuid4().hex[:8]}"
BENCH_DSN = f"postgresql://tollgate:tollgate@127.0.0.1:5432/{BENCH_DB}"
NUMBER = "601234567"
LES = ("0.002", "0.005", "0.01", "0.025")
LAG = "tollgate_loop_lag_seconds"


@dataclass
class Run:
    name: str
    ok: int
    failed: int
    seconds: float
    pdd_ms: list[float]
    cpu_s: float = 0.0  # Asterisk's user + system CPU time during the run
    tollgate_cpu_s: float = 0.0  # tollgate serve's, same run

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / max(1, self.ok + self.failed)

    @property
    def cps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def pdd(self, q: float) -> float:
        if not self.pdd_ms:
            return float("nan")
        ordered = sorted(self.pdd_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def prepare(prefix: str) -> Settings:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        # The benchmark's own database, built every run from the current migrations.
        await admin.execute(f'create database "{BENCH_DB}"')
    finally:
        await admin.close()
    settings = Settings(pg_dsn=BENCH_DSN, keyspace=Keyspace(prefix))
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        await db.upgrade(conn)
    finally:
        await conn.close()
    async with services(settings) as s:
        assert s.pool is not None
        async with s.pool.acquire() as conn:
            deck, _ = await import_deck(
                conn, load_deck(ROOT / "examples/decks/retail/deck.toml"), "bench"
            )
        await publish(s.redis, settings.keyspace, deck)
        await s.accounts.create(Account("bench-a", deck="retail", cps=0, max_calls=0))
        await s.accounts.add_entry("bench-a", "topup", 10**6 * 10**6, at=datetime.now(UTC))
    return settings


async def cleanup(settings: Settings) -> None:
    async with services(settings, pg=False) as s:
        async for key in s.redis.scan_iter(match=f"{settings.keyspace.prefix}:*", count=5000):
            await s.redis.delete(key)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'drop database if exists "{BENCH_DB}" with (force)')
    finally:
        await admin.close()


def start_tollgate(
    settings: Settings, agi_port: int, log: Path, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    metrics_port = free_tcp_port()
    env = {
        **os.environ,
        "TOLLGATE_PG_DSN": settings.pg_dsn,
        "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
        "TOLLGATE_AGI_PORT": str(agi_port),
        "TOLLGATE_METRICS_PORT": str(metrics_port),
        # A load generator is an autodialer by every rule: detection has its own benchmark.
        "TOLLGATE_ABUSE": "0",
        # as deployed (docker-compose): serve gets the CPU before the rest of the host
        "TOLLGATE_NICE": os.environ.get("TOLLGATE_NICE", "-10"),
        **(extra or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", agi_port)) == 0:
                return proc, metrics_port
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"tollgate serve did not start: {log.read_text()[-1000:]}")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def share_within(port: int, name: str, le: str, label: str = "") -> str:
    """Share of a histogram's observations within `le` seconds; `label` (e.g.
    'switch="fastagi"') picks one series."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    fast = [x for x in lines if x.startswith(f"{name}_bucket") and f'le="{le}"' in x and label in x]
    total = [x for x in lines if x.startswith(f"{name}_count") and label in x]
    if not fast or not total or not float(total[0].split()[-1]):
        return "n/a"
    return f"{float(fast[0].split()[-1]) / float(total[0].split()[-1]):.3f}"


def lag_counts(port: int) -> str:
    """Loop wake-ups counted per cause of their lateness, and how many were 5 ms late."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    shown = []
    for why in ("running", "waiting", "unknown"):
        total = [x for x in lines if x.startswith(f"{LAG}_count") and f'"{why}"' in x]
        fast = [
            x
            for x in lines
            if x.startswith(f"{LAG}_bucket") and f'"{why}"' in x and 'le="0.005"' in x
        ]
        if total:
            n, ok = float(total[0].split()[-1]), float(fast[0].split()[-1]) if fast else 0.0
            shown.append(f"{why} {n:.0f} ({n - ok:.0f} over 5 ms)")
    return ", ".join(shown) or "n/a"


def answered_within(port: int, le: str) -> str:
    """Share of serve's authorizations answered within `le` seconds (its histogram)."""
    return share_within(port, "tollgate_authorize_duration_seconds", le, 'switch="fastagi"')


def settled(port: int, placed: int, wait_s: float = 30) -> int:
    """Outcomes tollgate settled from the outcome log, once it caught up (or gave up)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        done = metric(port, "tollgate_outcome_log_settled_total")
        if done >= placed and metric(port, "tollgate_outcome_log_lag_bytes") == 0:
            break
        time.sleep(0.5)
    return int(metric(port, "tollgate_outcome_log_settled_total"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def asterisk_cpu_s(rig_name: str) -> float:
    """User + system CPU seconds of the rig's Asterisk daemon (0 if it is not found)."""
    marker = f"/tollgate-run/{rig_name}/etc/asterisk.conf"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmdline and b"-f" in cmdline:
            return cpu_s(int(proc.name))
    return 0.0


def place(
    name: str,
    ip: str,
    sip_port: int,
    rate: int,
    calls: int,
    hold_ms: int,
    rig_name: str,
    tollgate_pid: int,
) -> Run:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    xml = work / "uac_rate.xml"
    xml.write_text((ROOT / "bench/sipp/uac_rate.xml").read_text().replace("HOLD_MS", str(hold_ms)))
    cmd = [
        "sipp",
        f"127.0.0.1:{sip_port}",
        "-sf",
        str(xml),
        "-s",
        NUMBER,
        "-i",
        ip,
        "-p",
        str(free_udp_port(ip)),
        "-mp",
        str(free_udp_port(ip)),
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(rate * (hold_ms // 1000 + 5)),
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(work / "stat.csv"),
        "-fd",
        "1",
        "-trace_rtt",
        "-rtt_freq",
        "1",
        "-trace_err",
        "-error_file",
        str(work / "err.log"),
        "-timeout",
        f"{calls // rate + hold_ms // 1000 + 60}s",
    ]
    cpu_before, tollgate_before = asterisk_cpu_s(rig_name), cpu_s(tollgate_pid)
    start = time.monotonic()
    subprocess.run(
        cmd,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=calls / rate + hold_ms / 1000 + 120,
    )
    elapsed = time.monotonic() - start - hold_ms / 1000
    cpu = asterisk_cpu_s(rig_name) - cpu_before
    tollgate_cpu = cpu_s(tollgate_pid) - tollgate_before
    with (work / "stat.csv").open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    pdd: list[float] = []
    for path in glob.glob(str(work / "*_rtt.csv")):
        with open(path) as f:
            for row in csv.reader(f, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():
                    pdd.append(float(row[1]))
    print(f"  ({name}: SIPp files in {work})")
    return Run(
        name,
        int(last["SuccessfulCall(C)"]),
        int(last["FailedCall(C)"]),
        elapsed,
        pdd,
        cpu,
        tollgate_cpu,
    )


def report(rate: int, calls: int, hold_ms: int, gated: Run, direct: Run) -> None:
    nice = os.environ.get("TOLLGATE_NICE", "-10")
    print(
        f"offered: {rate} calls/s, {calls} calls, {hold_ms} ms talk each; serve at nice {nice};"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    for run in (gated, direct):
        print(
            f"{run.name:>9}: {run.cps:6.1f} calls/s sustained, {run.ok} ok, {run.failed} failed,"
            f" post-dial delay p50 {run.pdd(0.5):.1f} ms p99 {run.pdd(0.99):.1f} ms"
            f" max {max(run.pdd_ms, default=float('nan')):.1f} ms;"
            f" CPU ms/call: Asterisk {run.cpu_ms_per_call:.2f},"
            f" tollgate serve {1000 * run.tollgate_cpu_s / max(1, run.ok + run.failed):.2f}"
        )
    print(
        f"    ratio: calls/s {gated.cps / direct.cps:.3f}, "
        f"post-dial delay added p50 {gated.pdd(0.5) - direct.pdd(0.5):+.1f} ms "
        f"p99 {gated.pdd(0.99) - direct.pdd(0.99):+.1f} ms, "
        f"Asterisk CPU per call {gated.cpu_ms_per_call / max(direct.cpu_ms_per_call, 1e-9):.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", default="20", help="calls per second offered (comma-separated)")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--hold-ms", type=int, default=1000)
    args = p.parse_args()
    rates = [int(r) for r in args.rate.split(",")]
    prefix = f"tgbench{uuid.uuid4().hex[:6]}"
    # two RTP/RTCP pairs per call; Asterisk frees them only some time after the BYE
    os.environ["TOLLGATE_RTP_PORTS"] = str(min(40_000, max(200, args.calls * 2 * 4 + 400)))
    settings = asyncio.run(prepare(prefix))
    config = RigConfig.with_free_ports(
        f"bench-{os.getpid()}",
        accounts={"phone-a": "bench-a"},
        extra_conf_dir=str(ROOT / "bench/asterisk"),
        pg_dsn=settings.pg_dsn,
    )
    rig = AsteriskRig(config)
    log = Path(tempfile.mkdtemp(prefix="bench-tollgate-")) / "serve.log"
    # every call's outcome comes through the outcome log, as in production; AMI as deployed
    ami = {
        "TOLLGATE_OUTCOME_LOG": str(rig.outcome_log),
        "TOLLGATE_AMI_HOST": "127.0.0.1",
        "TOLLGATE_AMI_PORT": str(config.ami_port),
        "TOLLGATE_AMI_USER": config.ari_user,
        "TOLLGATE_AMI_SECRET": config.ari_password,
    }
    # as deployed (docker-compose): the CDR writer is its own process, not in serve's loop
    tollgate, metrics_port = start_tollgate(
        settings, config.agi_port, log, ami | {"TOLLGATE_CDR_WRITER": "0"}
    )
    writer = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "cdr-writer"],
        env={
            **os.environ,
            "TOLLGATE_PG_DSN": settings.pg_dsn,
            "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
            "TOLLGATE_METRICS_PORT": str(free_tcp_port()),
        },
        stdout=(log.parent / "cdr-writer.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    results: list[tuple[int, Run, Run]] = []
    try:
        rig.start()
        with SippCarrier(port=config.carrier_port):
            for rate in rates:
                direct = place(
                    "direct",
                    "127.0.0.8",
                    config.sip_port,
                    rate,
                    args.calls,
                    args.hold_ms,
                    config.name,
                    tollgate.pid,
                )
                gated = place(
                    "tollgate",
                    "127.0.0.2",
                    config.sip_port,
                    rate,
                    args.calls,
                    args.hold_ms,
                    config.name,
                    tollgate.pid,
                )
                results.append((rate, gated, direct))
                report(rate, args.calls, args.hold_ms, gated, direct)
            placed = sum(g.ok + g.failed for _, g, _ in results)
            print(f"outcomes settled from the outcome log: {settled(metrics_port, placed)}"
                  f" of {placed} calls placed through tollgate")  # fmt: skip
            within = [answered_within(metrics_port, le) for le in ("0.005", "0.025")]
            print(
                f"authorizations answered by serve within 5 ms / 25 ms: {within[0]} / {within[1]}"
                " (serve process only; workers export their own)"
            )
            # accept to grant sent, and the loop's stalls (a 20 ms timer's lateness)
            answer = "tollgate_agi_answer_seconds"
            sent = [share_within(metrics_port, answer, le, 'script="authorize"') for le in LES]
            print(f"authorize accept->grant sent within 2/5/10/25 ms: {' / '.join(sent)}")
            for why in ("running", "waiting"):
                label = f'cause="{why}"'
                lag = [share_within(metrics_port, LAG, le, label) for le in LES]
                print(f"loop wake-ups late by 2/5/10/25 ms or less ({why}): {' / '.join(lag)}")
            print(f"loop wake-ups by cause: {lag_counts(metrics_port)}")
            print(f"load average at the end: {os.getloadavg()}")
    finally:
        rig.stop()
        for proc in (tollgate, writer):
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        asyncio.run(cleanup(settings))
    print("summary (rate offered: calls/s ratio, failed with/without, added pdd p50/p99 ms):")
    for rate, gated, direct in results:
        print(
            f"  {rate:4d}/s: {gated.cps / direct.cps:.3f}, {gated.failed}/{direct.failed},"
            f" {gated.pdd(0.5) - direct.pdd(0.5):+.1f}/{gated.pdd(0.99) - direct.pdd(0.99):+.1f},"
            f" CPU {gated.cpu_ms_per_call:.2f}/{direct.cpu_ms_per_call:.2f} ms/call"
        )


if __name__ == "__main__":
    main()
