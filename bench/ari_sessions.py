"""Concurrent calls under ARI session control, through a real Asterisk.

SIPp offers calls at a fixed rate that each talk `--hold-s` seconds; tollgate grants short
slices so every call renews several times. In the same run the same load goes through an
identical dialplan without tollgate (the limit of this machine's Asterisk and SIPp).
Prints calls completed, peak concurrent sessions, renewals/s processed and the ratios.

    .venv/bin/python bench/ari_sessions.py [--rate 10] [--calls 200] [--hold-s 20] [--slice-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench.e2e_calls import ROOT, Run, cleanup, place, prepare, start_tollgate
from tests.e2e.rig import AsteriskRig, RigConfig, SippCarrier


class Sampler(threading.Thread):
    """Polls tollgate's metrics: peak of active sessions and the renewal counter."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.peak = 0
        self.running = True

    def read(self) -> tuple[int, int]:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            text = resp.read().decode()
        active = re.search(r"^tollgate_sessions_active ([0-9.e+]+)$", text, re.M)
        renewals = re.search(
            r'^tollgate_session_events_total\{kind="renewal"\} ([0-9.e+]+)$', text, re.M
        )
        return (
            int(float(active.group(1))) if active else 0,
            int(float(renewals.group(1))) if renewals else 0,
        )

    def run(self) -> None:
        while self.running:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.read()[0])
            time.sleep(0.25)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=int, default=10)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--hold-s", type=int, default=20)
    p.add_argument("--slice-s", type=int, default=5)
    args = p.parse_args()
    os.environ["TOLLGATE_RTP_PORTS"] = str(min(40_000, max(400, args.calls * 2 * 4 + 400)))
    settings = asyncio.run(prepare(f"tgbench{uuid.uuid4().hex[:6]}"))
    config = RigConfig.with_free_ports(
        f"bench-ari-{os.getpid()}",
        accounts={"phone-a": "bench-a"},
        extra_conf_dir=str(ROOT / "bench/asterisk"),
        ring_seconds=30,
        pg_dsn=settings.pg_dsn,
    )
    log = Path(tempfile.mkdtemp(prefix="bench-ari-")) / "serve.log"
    extra = {
        "TOLLGATE_ARI_URL": f"http://127.0.0.1:{config.ari_port}",
        "TOLLGATE_ARI_USER": config.ari_user,
        "TOLLGATE_ARI_PASSWORD": config.ari_password,
        "TOLLGATE_SLICE_S": str(args.slice_s),
        "TOLLGATE_RENEW_BEFORE_S": str(max(1, args.slice_s // 3)),
    }
    rig = AsteriskRig(config)
    rig.start()
    tollgate, metrics_port = start_tollgate(settings, config.agi_port, log, extra)
    sampler = Sampler(metrics_port)
    try:
        with SippCarrier(port=config.carrier_port):
            direct = place(
                "direct", "127.0.0.8", config.sip_port, args.rate, args.calls, args.hold_s * 1000
            )
            _, renewals_before = sampler.read()
            sampler.start()
            started = time.monotonic()
            gated = place(
                "ari", "127.0.0.2", config.sip_port, args.rate, args.calls, args.hold_s * 1000
            )
            elapsed = time.monotonic() - started
            sampler.running = False
            _, renewals_after = sampler.read()
    finally:
        rig.stop()
        tollgate.send_signal(signal.SIGTERM)
        tollgate.wait(15)
        asyncio.run(cleanup(settings))
    renewals = renewals_after - renewals_before
    expected_peak = min(args.calls, args.rate * args.hold_s)
    print(
        f"offered: {args.rate} calls/s, {args.calls} calls of {args.hold_s} s, slices of "
        f"{args.slice_s} s (about {expected_peak} calls at once)"
    )
    show(direct, "no tollgate")
    show(gated, "ARI control")
    print(
        f"  ARI control: peak {sampler.peak} concurrent sessions, {renewals} renewals in "
        f"{elapsed:.0f} s = {renewals / elapsed:.1f} renewals/s"
    )
    print(
        f"  ratio: completed calls {gated.ok / max(direct.ok, 1):.2f}, "
        f"peak sessions / offered concurrency {sampler.peak / expected_peak:.2f}"
    )


def show(run: Run, label: str) -> None:
    print(
        f"  {label:>11}: {run.ok} completed, {run.failed} failed, post-dial delay p50 "
        f"{run.pdd(0.5):.1f} ms p95 {run.pdd(0.95):.1f} ms"
    )


if __name__ == "__main__":
    main()
