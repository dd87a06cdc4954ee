"""Authorizations per second through tollgate's Python API against the real Redis, and in
the same run `redis-benchmark` executing the same Lua script with the same keys and
arguments: the physical limit of this Redis for this script. Prints both and the ratio.

Ours runs as `tollgate serve` does: in `--processes` processes (its FastAGI workers,
TOLLGATE_SERVE_WORKERS, default one per core up to 4) sharing the same total concurrency,
and for comparison in one process.

    .venv/bin/python bench/authorize.py [--calls 20000] [--concurrency 32] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from core.redis_fast import redis_from_url
from core.redis_pipe import CommandPipe
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_cache import DeckCache
from rating.deck_store import publish
from rating.keys import Keyspace
from rating.ledger import CallRequest, Ledger, LedgerSettings
from switch.agi import AgiSettings, FastAgiServer
from switch.fastagi import FastAgiAdapter
from tollgate.workers import default_workers

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
# as tollgate serve (TOLLGATE_REDIS_PIPELINE); --no-pipeline measures redis-py alone
PIPELINE = "--no-pipeline" not in sys.argv
NUMBER = "601234567"


async def setup(redis: Redis, keys: Keyspace, pipe: CommandPipe | None) -> tuple[Ledger, str]:
    deck = load_deck(ROOT / "examples" / "decks" / "retail" / "deck.toml")
    await publish(redis, keys, deck)
    ledger = Ledger(
        redis,
        keys,
        DeckCache(redis, keys, 1.0),
        LedgerSettings(switch_host="bench"),
        pipe=pipe,
    )
    account = Account("bench", deck=deck.name, max_calls=0, cps=0)
    fields = [x for kv in account.redis_fields().items() for x in kv]
    await ledger.script("mirror")(keys=[keys.account(account.id)], args=fields)
    # plenty of credit: every call is allowed and reserves, as the common case does
    await ledger.script("apply_entry")(keys=[keys.account(account.id)], args=[1, 10**14, "topup"])
    return ledger, account.id


async def python_api(
    ledger: Ledger, account: str, calls: int, concurrency: int, tag: str = "py"
) -> float:
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            g = await ledger.authorize(CallRequest(account, f"{tag}-{n}", NUMBER, "600100200"))
            assert g.allowed, g

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


def _process_share(
    prefix: str, account: str, calls: int, concurrency: int, tag: str, start: Any, ready: Any
) -> float:
    """One process's share of a multi-process round: its own event loop, Redis client and
    ledger (as a serve worker has). Returns the epoch second it finished."""
    import uvloop

    async def run() -> float:
        redis = redis_from_url(REDIS_URL, max_connections=concurrency + 4, socket_timeout=30)
        keys = Keyspace(prefix, 16)
        ledger = Ledger(
            redis,
            keys,
            DeckCache(redis, keys, 1.0),
            LedgerSettings(switch_host="bench"),
            pipe=CommandPipe.from_url(REDIS_URL) if PIPELINE else None,
        )
        try:
            await python_api(ledger, account, 200, concurrency, f"{tag}w")  # warm up
            ready.put(True)
            await asyncio.to_thread(start.wait)
            queue = iter(range(calls))

            async def worker() -> None:
                for n in queue:
                    g = await ledger.authorize(
                        CallRequest(account, f"{tag}-{n}", NUMBER, "600100200")
                    )
                    assert g.allowed, g

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.time()
        finally:
            if ledger.pipe is not None:
                await ledger.pipe.close()
            await redis.aclose()

    return uvloop.run(run())


def _process_main(args: tuple[str, str, int, int, str], start: Any, ready: Any, out: Any) -> None:
    out.put(_process_share(*args, start, ready))


def several_processes(
    prefix: str, account: str, calls: int, concurrency: int, processes: int, round_no: int
) -> float:
    """Authorizations/s of `processes` processes started together, `concurrency` in all.

    Spawned, not forked: a forked child shares the parent's Redis sockets, and a reply
    read by the wrong process leaves the other waiting forever."""
    ctx = multiprocessing.get_context("spawn")
    start, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
    share = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    procs = [
        ctx.Process(
            target=_process_main,
            args=(
                (prefix, account, calls // processes, share[i], f"mp{round_no}p{i}"),
                start,
                ready,
                out,
            ),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:  # every process imported, connected and warmed up
        ready.get(timeout=300)
    began = time.time()
    start.set()
    ends = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return (calls // processes) * processes / (max(ends) - began)


async def latency(ledger: Ledger, account: str, samples: int) -> tuple[float, float]:
    times = []
    for n in range(samples):
        t = time.perf_counter()
        await ledger.authorize(CallRequest(account, f"lat-{n}", NUMBER, "600100200"))
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def agi_header(account: str, call_id: str) -> bytes:
    """What res_agi sends for `AGI(agi://.../authorize,<asked>,<budget>)`."""
    env = {
        "network": "yes",
        "network_script": "authorize",
        "request": "agi://127.0.0.1/authorize",
        "channel": "PJSIP/phone-a-00000001",
        "language": "en",
        "type": "PJSIP",
        "uniqueid": call_id,
        "version": "22.10.1",
        "callerid": "600100200",
        "calleridname": "unknown",
        "callingpres": "0",
        "callingani2": "0",
        "callington": "0",
        "callingtns": "0",
        "dnid": NUMBER,
        "rdnis": "unknown",
        "context": "tollgate-outbound",
        "extension": NUMBER,
        "priority": "6",
        "enhanced": "0.0",
        "accountcode": account,
        "threadid": "140000000000000",
        "arg_1": f"{time.time():.3f}",
        "arg_2": "2",
    }
    return ("".join(f"agi_{k}: {v}\n" for k, v in env.items()) + "\n").encode()


async def fastagi_latency(ledger: Ledger, account: str, samples: int) -> tuple[float, float]:
    """p50/p99 (us) from connecting to tollgate's FastAGI socket to reading the grant, one
    request at a time (the server runs in this process: the client's work is included)."""
    adapter = FastAgiAdapter(ledger)
    server = FastAgiServer(adapter.handlers(), AgiSettings(port=0))
    await server.start()
    times = []
    try:
        for n in range(samples):
            t = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(agi_header(account, f"agi-{n}"))
            line = await reader.readline()
            times.append((time.perf_counter() - t) * 1e6)
            assert line.startswith(b"SET VARIABLE TOLLGATE_GRANT") and b"ALLOW" in line, line
            writer.write(b"200 result=1\n")
            await reader.read()  # the server closes
            writer.close()
    finally:
        await server.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


async def redis_benchmark_args(ledger: Ledger, account: str) -> list[str]:
    keys, argv, _ = await ledger.authorize_command(
        CallRequest(account, "rb-__rand_int__", NUMBER, "600100200")
    )
    sha = ledger.script("authorize").sha
    return ["EVALSHA", sha, str(len(keys)), *keys, *argv]


def run_redis_benchmark(command: list[str], calls: int, concurrency: int) -> float:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found (Debian package redis-tools)")
    host, port = re.match(r"redis://([^:/]+):?(\d+)?", REDIS_URL).groups()  # type: ignore[union-attr]
    out = subprocess.run(
        [
            exe,
            "-h",
            host,
            "-p",
            port or "6379",
            "-n",
            str(calls),
            "-c",
            str(concurrency),
            "-r",
            "1000000000",
            "--csv",
            *command,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    rows = [r for r in csv.reader(out.splitlines()) if r and r[0] != "test"]
    return float(rows[-1][1])


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--processes", type=int, default=default_workers(), help="as TOLLGATE_SERVE_WORKERS"
    )
    p.add_argument("--no-pipeline", action="store_true", help="as TOLLGATE_REDIS_PIPELINE=0")
    args = p.parse_args()
    # bounded: a Redis paused or killed under the benchmark fails it instead of hanging it
    redis = redis_from_url(REDIS_URL, max_connections=args.concurrency + 4, socket_timeout=30)
    keys = Keyspace(f"bench{uuid.uuid4().hex[:8]}", 16)
    pipe = CommandPipe.from_url(REDIS_URL) if PIPELINE else None
    ratios: list[float] = []
    single: list[float] = []
    try:
        ledger, account = await setup(redis, keys, pipe)
        await python_api(ledger, account, 500, args.concurrency)  # warm up, load the script
        command = await redis_benchmark_args(ledger, account)
        # Alternated rounds: the machine's load changes while it runs; each ratio compares
        # neighbours, and the median of them is reported.
        for n in range(args.rounds):
            one = await python_api(ledger, account, args.calls, args.concurrency, f"py{n}")
            ours = await asyncio.to_thread(
                several_processes,
                keys.prefix,
                account,
                args.calls,
                args.concurrency,
                args.processes,
                n,
            )
            limit = await asyncio.to_thread(
                run_redis_benchmark, command, args.calls * 2, args.concurrency
            )
            ratios.append(ours / limit)
            single.append(one / limit)
            print(
                f"round {n + 1}: ours {ours:8.0f} /s ({args.processes} processes),"
                f" {one:8.0f} /s (1 process), redis-benchmark {limit:8.0f} /s,"
                f" ratio {ours / limit:.2f} ({one / limit:.2f} with 1 process)"
            )
        p50, p99 = await latency(ledger, account, 2000)
        agi50, agi99 = await fastagi_latency(ledger, account, 2000)
    finally:
        async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=5000):
            await redis.delete(key)
        await redis.aclose()
        if pipe is not None:
            await pipe.close()
    print(
        f"authorize via Python API : {ours:10.0f} /s  ({args.concurrency} concurrent,"
        f" {args.processes} processes)"
    )
    print(f"same Lua via redis-bench : {limit:10.0f} /s  (the limit of this Redis)")
    print(
        f"ratio (median of {args.rounds})      : {statistics.median(ratios):10.2f}"
        f"  (1 process: {statistics.median(single):.2f})"
    )
    print(f"latency, one at a time   : p50 {p50:.0f} us, p99 {p99:.0f} us")
    print(f"at the FastAGI socket    : p50 {agi50:.0f} us, p99 {agi99:.0f} us (connect to grant)")


if __name__ == "__main__":
    # The loop tollgate's processes run on (uvloop); --asyncio for the standard loop.
    if "--asyncio" in sys.argv:
        sys.argv.remove("--asyncio")
        asyncio.run(main())
    else:
        import uvloop

        uvloop.run(main())
