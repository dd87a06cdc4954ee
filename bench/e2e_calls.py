"""SIP calls at a fixed rate through a real Asterisk: once through tollgate's dialplan (FastAGI
authorize + finish against `tollgate serve`), once through an identical dialplan without
tollgate, in the same run. Prints calls/s sustained, failed calls and post-dial delay
(INVITE -> 180) for both, and the ratios.

    .venv/bin/python bench/e2e_calls.py [--rate 20] [--calls 300] [--hold-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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
BENCH_DSN = "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate_bench"
NUMBER = "601234567"


@dataclass
class Run:
    name: str
    ok: int
    failed: int
    seconds: float
    pdd_ms: list[float]

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
        # The benchmark's own database, rebuilt every run from the current migrations.
        await admin.execute("drop database if exists tollgate_bench")
        await admin.execute("create database tollgate_bench")
    finally:
        await admin.close()
    settings = Settings(pg_dsn=BENCH_DSN, keyspace=Keyspace(prefix, 16))
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


def place(name: str, ip: str, sip_port: int, rate: int, calls: int, hold_ms: int) -> Run:
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
    start = time.monotonic()
    subprocess.run(
        cmd,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=calls / rate + hold_ms / 1000 + 120,
    )
    elapsed = time.monotonic() - start - hold_ms / 1000
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
    return Run(name, int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"]), elapsed, pdd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=int, default=20, help="calls per second offered")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--hold-ms", type=int, default=1000)
    args = p.parse_args()
    prefix = f"tgbench{uuid.uuid4().hex[:6]}"
    # two RTP/RTCP pairs per call; Asterisk frees them only some time after the BYE
    os.environ["TOLLGATE_RTP_PORTS"] = str(min(40_000, max(200, args.calls * 2 * 4 + 400)))
    settings = asyncio.run(prepare(prefix))
    config = RigConfig.with_free_ports(
        f"bench-{os.getpid()}",
        accounts={"phone-a": "bench-a"},
        extra_conf_dir=str(ROOT / "bench/asterisk"),
    )
    rig = AsteriskRig(config)
    log = Path(tempfile.mkdtemp(prefix="bench-tollgate-")) / "serve.log"
    tollgate, _ = start_tollgate(settings, config.agi_port, log)
    try:
        rig.start()
        with SippCarrier(port=config.carrier_port):
            direct = place(
                "direct", "127.0.0.8", config.sip_port, args.rate, args.calls, args.hold_ms
            )
            gated = place(
                "tollgate", "127.0.0.2", config.sip_port, args.rate, args.calls, args.hold_ms
            )
    finally:
        rig.stop()
        tollgate.send_signal(signal.SIGTERM)
        tollgate.wait(15)
        asyncio.run(cleanup(settings))
    print(f"offered: {args.rate} calls/s, {args.calls} calls, {args.hold_ms} ms talk each")
    for run in (gated, direct):
        print(
            f"{run.name:>9}: {run.cps:6.1f} calls/s sustained, {run.ok} ok, {run.failed} failed,"
            f" post-dial delay p50 {run.pdd(0.5):.1f} ms p95 {run.pdd(0.95):.1f} ms"
            f" max {max(run.pdd_ms, default=float('nan')):.1f} ms"
        )
    print(
        f"    ratio: calls/s {gated.cps / direct.cps:.2f}, "
        f"post-dial delay p50 {gated.pdd(0.5) / direct.pdd(0.5):.2f}x "
        f"(+{gated.pdd(0.5) - direct.pdd(0.5):.1f} ms for authorization)"
    )
    print(
        f"(statistics: mean pdd tollgate {statistics.fmean(gated.pdd_ms or [0]):.1f} ms, "
        f"direct {statistics.fmean(direct.pdd_ms or [0]):.1f} ms)"
    )


if __name__ == "__main__":
    main()
