"""`tollgate account import` of many accounts, and in the same run the raw pipelined Redis
write of the same accounts' settings (the part of onboarding a call depends on), which is
the limit. Prints accounts/s of both, the ratio, and the time of importing the same file
again (nothing to do but check).

    .venv/bin/python bench/account_import.py [--accounts 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, scratch

GOAL = 5_000  # accounts/s


def write_csv(path: Path, count: int) -> None:
    with path.open("w") as f:
        f.write("id,kind,deck,max_calls,cps,daily_cap,blocked_prefixes\n")
        for n in range(count):
            f.write(f"bench-{n:07d},prepaid,retail,4,2,50.00,4870\n")


async def raw_pipelined(redis: Redis, prefix: str, count: int) -> float:
    """The same hashes (settings and zeroed money fields), pipelined 2,000 at a time."""
    fields = {
        "kind": "prepaid",
        "status": "active",
        "currency": "PLN",
        "country": "PL",
        "timezone": "Europe/Warsaw",
        "deck": "retail",
        "credit_limit": "0",
        "max_calls": "4",
        "cps": "2",
        "daily_cap": "50000000",
        "allow_premium": "0",
        "allow_high_risk": "0",
        "blocked_prefixes": "4870",
        "invoice_overdue": "0",
        "balance": "0",
        "reserved": "0",
        "spent": "0",
        "entries_total": "0",
        "ledger_seq": "0",
    }
    started = time.perf_counter()
    for start in range(0, count, 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + 2000, count)):
                pipe.hset(f"{prefix}raw:{{s{n % 256}}}:acct:bench-{n:07d}", mapping=fields)
            await pipe.execute()
    return time.perf_counter() - started


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, default=100_000)
    args = p.parse_args()
    async with scratch("acct") as run:
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "accounts.csv"
            write_csv(csv_path, args.accounts)
            run.tollgate("db", "upgrade")
            run.tollgate("deck", "import", str(ROOT / "examples/decks/retail/deck.toml"))
            ours = run.tollgate("account", "import", str(csv_path))
            again = run.tollgate("account", "import", str(csv_path))
            limit = await raw_pipelined(run.redis, run.prefix, args.accounts)
    n = args.accounts
    print(f"tollgate account import (CLI)   : {n / ours:9.0f} accounts/s ({ours:.2f} s)")
    print(f"raw pipelined Redis HSET        : {n / limit:9.0f} accounts/s (the limit)")
    print(f"ratio                           : {limit / ours:9.2f}  ({n} accounts)")
    print(f"goal {GOAL}/s                   : {'met' if n / ours >= GOAL else 'NOT met'}")
    print(f"the same file again (no change) : {again:9.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
