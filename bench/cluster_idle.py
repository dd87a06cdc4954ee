"""What idle tollgate processes cost a Redis Cluster: commands per second with no calls.

A real 6-node cluster (tests/cluster/rig.py) and a throwaway database; the masters' command
counters (INFO stats) are read over a window with nothing running (the cluster's own
chatter), then with each process alone, started as an operator starts it, after a warm-up.
Printed: commands/s each process adds, and which commands (INFO commandstats).

    python bench/cluster_idle.py [--seconds 10] [--only cdr-writer]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import scratch  # noqa: E402
from tests.cluster.rig import Cluster, Node, free_ports  # noqa: E402

WARM_UP_S = 10.0  # a first round over 256 streams takes seconds on a busy box


def processes(outcome_log: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    agi, metrics = free_ports(2)
    return {
        "cdr-writer": (["cdr-writer"], {}),
        "abuse": (["abuse", "run"], {}),
        # serve alone: its own CDR writer and detector off (counted above)
        "serve": (
            ["serve"],
            {
                "TOLLGATE_CDR_WRITER": "0",
                "TOLLGATE_ABUSE": "0",
                "TOLLGATE_AGI_PORT": str(agi),
                "TOLLGATE_METRICS_PORT": str(metrics),
                "TOLLGATE_OUTCOME_LOG": str(outcome_log),
            },
        ),
    }


def counters(nodes: list[Node]) -> Counter[str]:
    """Calls per command summed over `nodes` (INFO commandstats)."""
    total: Counter[str] = Counter()
    for node in nodes:
        for line in node.cli("info", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                calls = int(rest.split(",")[0].split("=")[1])
                total[name.removeprefix("cmdstat_")] += calls
    return total


def window(masters: list[Node], seconds: float) -> Counter[str]:
    before = counters(masters)
    time.sleep(seconds)
    after = counters(masters)
    after.subtract(before)
    # the counters' own reads (INFO from this script) are not the process's
    after.pop("info", None)
    return Counter({k: v for k, v in after.items() if v > 0})


def measure(env: dict[str, str], masters: list[Node], seconds: float, only: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "db", "upgrade"],
        env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    quiet = window(masters, seconds)
    base = sum(quiet.values()) / seconds
    print(f"cluster alone: {base:.1f} commands/s {dict(quiet)}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "tollgate-outcomes.csv"
        log.touch()
        for name, (argv, extra) in processes(log).items():
            if only and name not in only:
                continue
            proc = subprocess.Popen(
                [sys.executable, "-m", "tollgate.cli", *argv],
                env={**env, **extra},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(WARM_UP_S)
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited {proc.returncode}")
                seen = window(masters, seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            rate = sum(seen.values()) / seconds - base
            top = {k: round(v / seconds, 1) for k, v in seen.most_common(5)}
            print(f"{name}: {rate:.0f} commands/s idle {top} (load {os.getloadavg()[0]:.1f})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", action="append", choices=["cdr-writer", "abuse", "serve"])
    args = parser.parse_args()
    cluster = Cluster().start()
    try:
        masters = [n for n in cluster.nodes if "role:master" in n.cli("info", "replication")]
        async with scratch("idle") as s:
            env = {**s.env, "TOLLGATE_REDIS_MODE": "cluster", "TOLLGATE_REDIS_URL": cluster.url}
            await asyncio.to_thread(measure, env, masters, args.seconds, args.only or [])
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
