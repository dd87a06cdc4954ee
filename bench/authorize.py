"""Authorizations per second through tollgate's Python API against the real Redis, and in
the same run `redis-benchmark` executing the same Lua script with the same keys and
arguments: the physical limit of this Redis for this script. Prints both and the ratio.

    .venv/bin/python bench/authorize.py [--calls 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from core.redis_fast import redis_from_url
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_cache import DeckCache
from rating.deck_store import publish
from rating.keys import Keyspace
from rating.ledger import CallRequest, Ledger, LedgerSettings
from switch.agi import AgiSettings, FastAgiServer
from switch.fastagi import FastAgiAdapter

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
NUMBER = "601234567"


async def setup(redis: Redis, keys: Keyspace) -> tuple[Ledger, str]:
    deck = load_deck(ROOT / "examples" / "decks" / "retail" / "deck.toml")
    await publish(redis, keys, deck)
    ledger = Ledger(redis, keys, DeckCache(redis, keys, 1.0), LedgerSettings(switch_host="bench"))
    account = Account("bench", deck=deck.name, max_calls=0, cps=0)
    fields = [x for kv in account.redis_fields().items() for x in kv]
    await ledger.script("mirror")(keys=[keys.account(account.id)], args=fields)
    # plenty of credit: every call is allowed and reserves, as the common case does
    await ledger.script("apply_entry")(keys=[keys.account(account.id)], args=[1, 10**14, "topup"])
    return ledger, account.id


async def python_api(ledger: Ledger, account: str, calls: int, concurrency: int) -> float:
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            g = await ledger.authorize(CallRequest(account, f"py-{n}", NUMBER, "600100200"))
            assert g.allowed, g

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


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
    args = p.parse_args()
    redis = redis_from_url(REDIS_URL, max_connections=args.concurrency + 4)
    keys = Keyspace(f"bench{uuid.uuid4().hex[:8]}", 16)
    ratios: list[float] = []
    try:
        ledger, account = await setup(redis, keys)
        await python_api(ledger, account, 500, args.concurrency)  # warm up, load the script
        command = await redis_benchmark_args(ledger, account)
        # Alternated rounds: the machine's load changes while it runs; each ratio compares
        # neighbours, and the median of them is reported.
        for n in range(args.rounds):
            ours = await python_api(ledger, account, args.calls, args.concurrency)
            limit = await asyncio.to_thread(
                run_redis_benchmark, command, args.calls * 2, args.concurrency
            )
            ratios.append(ours / limit)
            print(
                f"round {n + 1}: ours {ours:8.0f} /s, redis-benchmark {limit:8.0f} /s,"
                f" ratio {ours / limit:.2f}"
            )
        p50, p99 = await latency(ledger, account, 2000)
        agi50, agi99 = await fastagi_latency(ledger, account, 2000)
    finally:
        async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=5000):
            await redis.delete(key)
        await redis.aclose()
    print(f"authorize via Python API : {ours:10.0f} /s  ({args.concurrency} concurrent, 1 process)")
    print(f"same Lua via redis-bench : {limit:10.0f} /s  (the limit of this Redis)")
    print(f"ratio (median of {args.rounds})      : {statistics.median(ratios):10.2f}")
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
