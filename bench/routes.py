"""What least-cost routing adds to an authorization: authorizations per second through the
ledger's Python API against the real Redis, the same account and number, without carriers
(the single trunk) and with N carriers priced by buy decks, in one run; prints both and the
ratio (in-run, so the shared machine's load affects both alike).

    .venv/bin/python bench/routes.py [--calls 4000] [--carriers 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from rating.accounts import Account
from rating.carriers import Carrier, carriers_to_json
from rating.deck import build_deck, load_deck
from rating.deck_cache import DeckCache
from rating.deck_store import publish
from rating.keys import Keyspace
from rating.ledger import CallRequest, Ledger, LedgerSettings

ROOT = Path(__file__).resolve().parent.parent
HEAD = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"


async def setup(redis: Redis, keys: Keyspace, carriers: int) -> tuple[Ledger, str]:
    deck = load_deck(ROOT / "examples" / "decks" / "retail" / "deck.toml")
    await publish(redis, keys, deck)
    made = []
    for i in range(carriers):
        rows = f"48,Poland,0,0.0{i + 1}00,60,1,0,*\n4822,Warsaw,0,0.0{i + 1}50,60,1,0,*\n"
        data = {"name": f"buy{i}", "currency": "PLN", "rates": "r.csv", "bands": {}}
        buy = build_deck(data, (HEAD + rows).encode(), manifest_file="m", rates_file="r")
        await publish(redis, keys, buy)
        made.append(Carrier(f"c{i}", buy.name, trunk=f"trunk{i}", max_calls=10_000))
    await redis.set(keys.carriers(), carriers_to_json(made))
    ledger = Ledger(redis, keys, DeckCache(redis, keys, 1.0), LedgerSettings(switch_host="bench"))
    account = Account("bench", deck=deck.name, max_calls=0, cps=0)
    fields = [x for kv in account.redis_fields().items() for x in kv]
    await ledger.script("mirror")(keys=[keys.account(account.id)], args=fields)
    await ledger.script("apply_entry")(keys=[keys.account(account.id)], args=[1, 10**14, "topup"])
    return ledger, account.id


async def run(url: str, calls: int, carriers: int, concurrency: int) -> float:
    redis = Redis.from_url(url)
    keys = Keyspace(f"bench-routes-{uuid.uuid4().hex[:8]}", 16)
    try:
        ledger, account = await setup(redis, keys, carriers)
        queue = iter(range(calls))

        async def worker() -> None:
            for n in queue:
                grant = await ledger.authorize(CallRequest(account, f"r{n}", "221234567"))
                assert grant.allowed and len(grant.routes) == carriers, grant

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls / (time.perf_counter() - started)
    finally:
        async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=4000)
    p.add_argument("--carriers", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    url = os.environ.get("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
    single, routed = [], []
    for _ in range(a.rounds):  # interleaved: load changes hit both alike
        single.append(asyncio.run(run(url, a.calls, 0, a.concurrency)))
        routed.append(asyncio.run(run(url, a.calls, a.carriers, a.concurrency)))
    best_single, best_routed = max(single), max(routed)
    print(f"single trunk: {best_single:,.0f} authorizations/s (best of {a.rounds})")
    print(f"{a.carriers} carriers:   {best_routed:,.0f} authorizations/s")
    print(f"ratio routed/single: {best_routed / best_single:.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
