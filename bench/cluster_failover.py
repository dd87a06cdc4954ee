"""kill -9 one master of a real 6-node Redis Cluster and watch what clients see.

Workers loop on one-key commands (EVALSHA of a small script, like the ledger's) for keys on
every master; one master is killed. Printed per client configuration: how long the killed
master's keys failed (the failover time: the physical limit, set by cluster-node-timeout and
the replica election), and what keys on the other masters saw meanwhile (errors, worst
latency against their latency before the kill).

    python bench/cluster_failover.py            # redis-py as tollgate opens it, then as is
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio.cluster import RedisCluster  # noqa: E402

from core.redis_cluster import cluster_from_url  # noqa: E402
from tests.cluster.rig import Cluster  # noqa: E402

ERRORS: dict[str, list[str]] = defaultdict(list)
SCRIPT = "return redis.call('INCR', KEYS[1])"


async def worker(
    client: Any, key: str, log: list[tuple[str, float, float, bool]], stop: asyncio.Event
) -> None:
    script = client.register_script(SCRIPT)
    while not stop.is_set():
        t = time.monotonic()
        try:
            await script(keys=[key])
            ok = True
        except Exception as exc:
            ok = False
            ERRORS[key].append(f"{type(exc).__name__}: {exc}"[:120])
            await asyncio.sleep(0.01)
        log.append((key, t, time.monotonic() - t, ok))


async def run(name: str, client: Any, cluster: Cluster, keys_by_port: dict[int, list[str]]) -> None:
    victim_port = next(iter(keys_by_port))
    log: list[tuple[str, float, float, bool]] = []
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker(client, key, log, stop))
        for keys in keys_by_port.values()
        for key in keys
    ]
    await asyncio.sleep(2.0)
    killed = time.monotonic()
    next(n for n in cluster.nodes if n.port == victim_port).kill()
    await asyncio.sleep(12.0)
    stop.set()
    await asyncio.gather(*tasks)
    doomed = set(keys_by_port[victim_port])
    failed = [t for k, t, _, ok in log if k in doomed and not ok]
    down_s = (max(failed) - killed) if failed else 0.0
    before = [d for k, t, d, ok in log if t < killed and k not in doomed]
    during = [
        (d, ok) for k, t, d, ok in log if killed <= t <= killed + down_s + 1 and k not in doomed
    ]
    p50 = statistics.median(before) * 1000
    worst = max((d for d, _ in during), default=0.0) * 1000
    errors = sum(not ok for _, ok in during)
    kinds = Counter(e for k, errs in ERRORS.items() if k not in doomed for e in errs)
    ERRORS.clear()
    print(f"{name}: other masters' errors {dict(kinds)}" if kinds else f"{name}: no other errors")
    print(
        f"{name}: killed master's keys failed for {down_s:.2f} s;"
        f" other masters' keys: {errors} errors, worst {worst:.0f} ms"
        f" (p50 before the kill {p50:.2f} ms, ratio {worst / max(p50, 0.001):.0f}x)"
    )


async def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    for name, opener in (
        ("tollgate's cluster client", lambda url: cluster_from_url(url)),
        ("redis-py defaults", lambda url: RedisCluster.from_url(url)),
    ):
        cluster = Cluster().start()
        try:
            client = opener(cluster.url)
            keys_by_port: dict[int, list[str]] = {}
            n = 0
            while sum(len(v) >= 4 for v in keys_by_port.values()) < 3:
                key = f"k{{{n}}}"
                port = cluster.master_of_slot(int(client.keyslot(key))).port
                if len(keys_by_port.setdefault(port, [])) < 4:
                    keys_by_port[port].append(key)
                n += 1
            await run(name, client, cluster, keys_by_port)
            await client.aclose()
        finally:
            cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
