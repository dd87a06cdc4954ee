"""What waiting for a replica costs a call: authorize + finish per second through the
Python API, with money scripts followed by `WAIT 1 timeout` (TOLLGATE_REDIS_WAIT_REPLICAS=1)
and without, alternated round by round in one run, on a master and a replica started here
(redis-server on free ports, removed afterwards). Prints each round and the ratio.

    .venv/bin/python bench/replica_wait.py [--calls 5000] [--concurrency 32] [--rounds 3]
        [--no-pipeline]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from core.redis_pipe import CommandPipe
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_cache import DeckCache
from rating.deck_store import publish
from rating.keys import Keyspace
from rating.ledger import CallRequest, Ledger, LedgerSettings, Outcome

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "601234567"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), *extra],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def wait_synced(port: int) -> None:
    deadline = time.monotonic() + 20
    while "master_link_status:up" not in subprocess.run(
        ["redis-cli", "-p", str(port), "info", "replication"],
        capture_output=True, text=True, check=False,
    ).stdout:  # fmt: skip
        if time.monotonic() > deadline:
            raise SystemExit("the replica never synced")
        time.sleep(0.1)


async def calls(ledger: Ledger, account: str, n: int, concurrency: int, tag: str) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            cid = f"{tag}-{i}"
            assert (await ledger.authorize(CallRequest(account, cid, NUMBER, "600100200"))).allowed
            outcome = Outcome(True, 60, datetime.now(UTC), "ANSWER", "16")
            assert (await ledger.finish(account, cid, outcome)).status == "FINISHED"

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def run(args: argparse.Namespace, port: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    redis = Redis.from_url(url)
    keys = Keyspace("bench", 16)
    deck = load_deck(ROOT / "examples" / "decks" / "retail" / "deck.toml")
    await publish(redis, keys, deck)
    base = LedgerSettings(switch_host="bench", wait_timeout_ms=args.timeout_ms)
    pipes: list[CommandPipe] = []

    def ledger(replicas: int) -> Ledger:
        pipe = None if args.no_pipeline else CommandPipe.from_url(url)
        money = pipe.sibling() if pipe is not None and replicas else None
        pipes.extend(p for p in (pipe, money) if p is not None)
        settings = replace(base, wait_replicas=replicas)
        return Ledger(redis, keys, DeckCache(redis, keys, 1.0), settings, pipe=pipe,
                      money_pipe=money)  # fmt: skip

    plain, waiting = ledger(0), ledger(1)
    account = Account("bench", deck=deck.name, max_calls=0, cps=0)
    fields = [x for kv in account.redis_fields().items() for x in kv]
    await plain.script("mirror")(keys=[keys.account(account.id)], args=fields)
    await plain.money("apply_entry", [keys.account(account.id)], [1, 10**15, "topup"])
    await calls(plain, account.id, 500, args.concurrency, "warm-0")
    await calls(waiting, account.id, 500, args.concurrency, "warm-1")
    rates: dict[str, list[float]] = {"no wait": [], "WAIT 1": []}
    for r in range(args.rounds):
        for name, led in (("no wait", plain), ("WAIT 1", waiting)):
            rate = await calls(led, account.id, args.calls, args.concurrency, f"{name[0]}{r}")
            rates[name].append(rate)
            print(f"round {r + 1} {name:8} {rate:8.0f} calls/s (authorize + finish)")
    for name, values in rates.items():
        print(f"{name:8} median {statistics.median(values):8.0f} calls/s  "
              f"range {min(values):.0f}-{max(values):.0f}")  # fmt: skip
    ratios = [w / p for w, p in zip(rates["WAIT 1"], rates["no wait"], strict=True)]
    print(f"ratio WAIT/no wait per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.2f}")  # fmt: skip
    for p in pipes:
        await p.close()
    await redis.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout-ms", type=int, default=100)
    p.add_argument("--no-pipeline", action="store_true", help="as TOLLGATE_REDIS_PIPELINE=0")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mport, rport = free_port(), free_port()
        (Path(tmp) / "m").mkdir()
        (Path(tmp) / "r").mkdir()
        master = server(mport, Path(tmp) / "m")
        replica = server(rport, Path(tmp) / "r", "--replicaof", "127.0.0.1", str(mport))
        try:
            wait_synced(rport)
            asyncio.run(run(args, mport))
        finally:
            for proc in (replica, master):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
