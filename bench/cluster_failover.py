"""kill -9 one master of a real 6-node Redis Cluster under call load and compare clients.

Each account (4 per master, 2 callers each) runs calls as the ledger does: an authorize
script reserves the price under the call id (idempotent), a finish script settles it once
(a repeat answers "already settled", a call the server does not know answers "unknown"); a
failed authorize is a refused call, a failed finish is retried until it answers, as the
switch's parking lot does. One master is killed (node-timeout as in the test rig). Printed
per client, on a fresh cluster each:

- how long the killed master's accounts were down (the failover time: from the kill to
  their first command answered),
- errors and worst latency on the healthy masters' accounts while it failed over,
- money: calls settled by the callers against what the cluster holds afterwards (lost: a
  settled call the cluster lost, or a finish of a call it no longer knew; doubled: a call
  charged twice; open: a reservation left by an authorize whose answer was an error).

    python bench/cluster_failover.py [--runs 2]     # coredis's row when it is installed
(coredis is not a dependency of tollgate: `pip install coredis` to compare.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.cluster import RedisCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from core.redis_cluster import cluster_from_url  # noqa: E402
from tests.cluster.rig import Cluster, wait_until  # noqa: E402

PRICE = 190_000  # micro-units per call
AUTHORIZE = """
if redis.call('HSETNX', KEYS[2], ARGV[1], 'open') == 1 then
  redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
end
return 1
"""
FINISH = """
local state = redis.call('HGET', KEYS[2], ARGV[1])
if state == 'open' then
  redis.call('HSET', KEYS[2], ARGV[1], 'done')
  redis.call('HINCRBY', KEYS[1], 'reserved', -ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'balance', -ARGV[2])
  return 1
end
if state == 'done' then return 0 end
return -1
"""
ACCOUNTS_PER_MASTER = 4
CALLERS_PER_ACCOUNT = 2
RUN_AFTER_KILL_S = 14.0
WARM_UP_S = 3.0
BEFORE_S = 2.0  # the window before the kill that latency and throughput are taken from


@dataclass
class Tally:
    log: list[tuple[str, float, float, bool]] = field(default_factory=list)  # acct, t, s, ok
    settled: Counter[str] = field(default_factory=Counter)  # calls settled, by account
    unknown: int = 0  # finishes of a call the cluster no longer knew: its money is lost
    repeats: int = 0  # finishes answered "already settled" (a retry after an error)
    kinds: Counter[str] = field(default_factory=Counter)


async def caller(client: Any, account: str, tally: Tally, stop: asyncio.Event) -> None:
    authorize, finish = client.register_script(AUTHORIZE), client.register_script(FINISH)
    keys = [f"acct:{{{account}}}", f"calls:{{{account}}}"]
    while not stop.is_set():
        cid = uuid.uuid4().hex[:12]
        t = time.monotonic()
        try:
            await authorize(keys=keys, args=[cid, PRICE])
        except Exception as exc:  # the switch refuses the call
            tally.log.append((account, t, time.monotonic() - t, False))
            tally.kinds[f"{type(exc).__name__}: {exc}"[:100]] += 1
            await asyncio.sleep(0.05)
            continue
        tally.log.append((account, t, time.monotonic() - t, True))
        while True:
            t = time.monotonic()
            try:
                answer = int(await finish(keys=keys, args=[cid, PRICE]))
            except Exception as exc:
                tally.log.append((account, t, time.monotonic() - t, False))
                tally.kinds[f"{type(exc).__name__}: {exc}"[:100]] += 1
                await asyncio.sleep(0.05)
                continue
            tally.log.append((account, t, time.monotonic() - t, True))
            tally.unknown += answer == -1
            tally.repeats += answer == 0
            tally.settled[account] += answer >= 0
            break


@dataclass(frozen=True)
class Result:
    down_s: float
    healthy_errors: int
    worst_ms: float
    p50_ms: float
    per_s: float  # script calls answered per second before the kill
    lost: int  # settled calls the cluster no longer held afterwards
    unknown: int  # finishes of calls the cluster no longer knew (reserved, then lost)
    doubled: int
    open: int
    kinds: dict[str, int]


async def run(client: Any, cluster: Cluster) -> Result:
    by_port: dict[int, list[str]] = {}
    n = 0
    while sum(len(v) >= ACCOUNTS_PER_MASTER for v in by_port.values()) < 3:
        account = f"a{n}-{uuid.uuid4().hex[:6]}"
        port = cluster.master_of_slot(key_slot(f"{{{account}}}".encode())).port
        if len(by_port.setdefault(port, [])) < ACCOUNTS_PER_MASTER:
            by_port[port].append(account)
        n += 1
    victim_port = next(iter(by_port))
    doomed = set(by_port[victim_port])
    tally, stop = Tally(), asyncio.Event()
    tasks = [
        asyncio.create_task(caller(client, account, tally, stop))
        for accounts in by_port.values()
        for account in accounts
        for _ in range(CALLERS_PER_ACCOUNT)
    ]
    await asyncio.sleep(WARM_UP_S + BEFORE_S)  # connections and the command table first
    next(node for node in cluster.nodes if node.port == victim_port).kill()
    killed = time.monotonic()  # once it is gone (a reply read during the kill is not "back")
    await asyncio.sleep(RUN_AFTER_KILL_S)
    stop.set()
    await asyncio.gather(*tasks)
    # down: from the kill to the first command of a killed master's account answered after
    # it (an error reaches the caller sooner or later, a stall holds it: both count)
    back = [t + d for a, t, d, ok in tally.log if a in doomed and ok and t + d > killed]
    down_s = (min(back) - killed) if back else RUN_AFTER_KILL_S
    since = killed - BEFORE_S
    before = [d for a, t, d, ok in tally.log if since <= t < killed and a not in doomed]
    during = [(d, ok) for a, t, d, ok in tally.log if t >= killed and a not in doomed]
    every = [a for accounts in by_port.values() for a in accounts]
    lost, doubled, left_open = await _money(cluster, tally, every)
    return Result(
        down_s=down_s,
        healthy_errors=sum(not ok for _, ok in during),
        worst_ms=max((d for d, _ in during), default=0.0) * 1000,
        p50_ms=statistics.median(before) * 1000,
        per_s=sum(1 for _, t, _, ok in tally.log if ok and since <= t < killed) / BEFORE_S,
        lost=lost,
        unknown=tally.unknown,
        doubled=doubled,
        open=left_open,
        kinds=dict(tally.kinds.most_common(3)),
    )


async def _money(cluster: Cluster, tally: Tally, accounts: list[str]) -> tuple[int, int, int]:
    """(settled calls the cluster lost, calls charged twice, reservations left open), read
    by a fresh client once the cluster is whole again."""
    wait_until(cluster.healthy, what="cluster state ok again")
    live = next(n for n in cluster.nodes if n.proc is not None and n.proc.poll() is None)
    reader = RedisCluster(host="127.0.0.1", port=live.port)
    lost = doubled = left_open = 0
    try:
        for account in accounts:
            calls = await reader.hgetall(f"calls:{{{account}}}")
            money = await reader.hgetall(f"acct:{{{account}}}")
            done = sum(v == b"done" for v in calls.values())
            left_open += sum(v == b"open" for v in calls.values())
            lost += max(0, tally.settled[account] - done)
            charged = -int(money.get(b"balance", 0))
            doubled += max(0, charged // PRICE - tally.settled[account])
    finally:
        await reader.aclose()
    return lost, doubled, left_open


@contextlib.asynccontextmanager
async def redis_py(url: str, tuned: bool) -> AsyncIterator[Redis]:
    client = (
        cluster_from_url(url, socket_connect_timeout=2, socket_timeout=5)
        if tuned
        else RedisCluster.from_url(url)
    )
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def coredis_client(url: str) -> AsyncIterator[Any]:
    import coredis

    client = coredis.RedisCluster.from_url(url, connect_timeout=2, stream_timeout=5)
    async with client:  # coredis 5+: a client runs inside its own context
        yield client


CLIENTS: dict[str, Callable[[str], Any]] = {
    "tollgate (redis-py, tuned)": lambda url: redis_py(url, tuned=True),
    "redis-py defaults": lambda url: redis_py(url, tuned=False),
    "coredis defaults": coredis_client,
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="rounds over every client")
    parser.add_argument("--only", choices=list(CLIENTS), action="append")
    args = parser.parse_args()
    names = args.only or list(CLIENTS)
    if importlib.util.find_spec("coredis") is None and "coredis defaults" in names:
        print("coredis is not installed (pip install coredis): its row is left out")
        names.remove("coredis defaults")
    for round_ in range(args.runs):
        for name in names:
            cluster = Cluster().start()
            try:
                async with CLIENTS[name](cluster.url) as client:
                    r = await run(client, cluster)
            finally:
                cluster.stop()
            load = f"{os.getloadavg()[0]:.1f}"
            print(
                f"[{round_ + 1}] {name}: killed master's accounts down {r.down_s:.2f} s;"
                f" healthy: {r.healthy_errors} errors, worst {r.worst_ms:.0f} ms"
                f" (before: p50 {r.p50_ms:.1f} ms, {r.per_s:.0f} calls/s); money: lost {r.lost}"
                f" settled + {r.unknown} reserved, doubled {r.doubled},"
                f" open {r.open}; load {load}",
                flush=True,
            )
            if r.kinds:
                print(f"    errors: {r.kinds}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
