"""CDRs per second through the abuse detectors, and in the same run a bare XREADGROUP + XACK
loop over the same stream entries (no parsing, no windows, no findings): the limit of
consuming these streams from this Redis with this client. Prints both and the ratio.

The traffic is a working day of 500 ordinary accounts plus a few abusers (an autodialer,
premium-number attempts, revenue-share calls), so the finding, alert-less suspension and
PostgreSQL paths run too. Works under a throwaway Redis key prefix and a throwaway
database, removed afterwards.

    .venv/bin/python bench/abuse_detect.py [--cdrs 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from abuse.runner import AbuseDetector
from abuse.settings import AbuseSettings
from bench.cdr_ingest import fill_streams
from bench.harness import REDIS_URL, scratch
from rating.accounts import Account
from rating.keys import Keyspace
from rating.ledger import LedgerSettings
from runtime.services import services
from runtime.settings import Settings

ACCOUNTS = 500
Destination = tuple[str, Callable[[random.Random], str], int]  # class, number, micro/min
DESTINATIONS: tuple[Destination, ...] = (
    ("mobile", lambda r: f"+4860{r.randrange(10**7):07d}", 190_000),
    ("geographic", lambda r: f"+4822{r.randrange(10**7):07d}", 90_000),
    ("toll_free", lambda r: f"+48800{r.randrange(10**6):06d}", 0),
    ("international", lambda r: f"+4930{r.randrange(10**8):08d}", 250_000),
)


def entry(
    n: int,
    account: str,
    at_ms: int,
    to: str,
    cls: str,
    billsec: int,
    per_min: int,
    *,
    caller: str,
    reason: str = "OK",
) -> dict[str, str]:
    """One stream entry as the ledger writes it."""
    denied = reason != "OK"
    answered = billsec > 0 and not denied
    end = at_ms if denied else at_ms + 6000 + billsec * 1000
    cost = -(-billsec * per_min // 60 // 100) * 100 if answered else 0
    return {
        "call_id": f"ab-{n}",
        "account": account,
        "state": "denied" if denied else "finished",
        "decision": "DENY" if denied else "ALLOW",
        "reason": reason,
        "e164": to,
        "raw": to,
        "class": cls,
        "caller": caller,
        "switch": "bench",
        "deck": "retail",
        "currency": "PLN",
        "authorized_at": str(at_ms),
        "answered_at": str(at_ms + 6000) if answered else "",
        "ended_at": str(end),
        "billsec": str(billsec if answered else 0),
        "answered": "1" if answered else "0",
        "cost": str(cost),
        "rated_cost": str(cost),
        "disposition": "DENIED" if denied else ("ANSWER" if answered else "NOANSWER"),
        "hangup_cause": "16",
    }


def traffic(total: int, now_ms: int) -> list[dict[str, str]]:
    r = random.Random(7)
    out: list[dict[str, str]] = []
    day = 10 * 3600 * 1000
    abusers = total // 50
    # an autodialer: attempts every 2 s, a quarter answered for a few seconds
    start = now_ms - 3 * 3600 * 1000
    for i in range(abusers // 2):
        billsec = r.randint(3, 8) if i % 4 == 0 else 0
        to = f"+4860{r.randrange(10**7):07d}"
        out.append(
            entry(
                len(out),
                "dialer",
                start + i * 2000,
                to,
                "mobile",
                billsec,
                190_000,
                caller="+48221110000",
            )
        )
    for i in range(abusers // 4):  # premium numbers, again and again
        out.append(
            entry(
                len(out),
                "premium",
                start + i * 60_000,
                "+48701234567",
                "premium",
                0,
                0,
                caller="+48221110001",
                reason="PREMIUM_BLOCKED",
            )
        )
    for i in range(abusers // 4):  # revenue share: long calls to +882, side by side
        out.append(
            entry(
                len(out),
                "irsf",
                start + i * 30_000,
                f"+88213{r.randrange(10**6):06d}",
                "high_risk",
                1800,
                9_990_000,
                caller="+48221110002",
            )
        )
    while len(out) < total:
        account = f"acct-{r.randrange(ACCOUNTS)}"
        cls, make, per_min = r.choice(DESTINATIONS)
        billsec = 0 if r.random() < 0.25 else min(3000, max(7, int(r.lognormvariate(4.6, 0.9))))
        at = now_ms - day - 3600_000 + r.randrange(day)
        caller = f"+4822{zlib.crc32(account.encode()) % 10**7:07d}"
        out.append(entry(len(out), account, at, make(r), cls, billsec, per_min, caller=caller))
    out.sort(key=lambda e: int(e["ended_at"]))
    return out


async def bare_loop(redis: Redis, keys: Keyspace, batch: int, total: int) -> float:
    """Read and acknowledge every entry through a group of its own: nothing else."""
    streams = [keys.cdr_stream(t) for t in keys.tags()]
    start = time.perf_counter()
    done = 0
    for stream in streams:
        while True:
            res: Any = await redis.xreadgroup("bare", "bench", {stream: ">"}, count=batch)
            if not res:
                break
            ids: list[bytes] = [eid for eid, _ in res[0][1]]
            await redis.xack(stream, "bare", *ids)
            done += len(ids)
    elapsed = time.perf_counter() - start
    if done != total:
        raise SystemExit(f"bare loop read {done} entries, expected {total}")
    return total / elapsed


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cdrs", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500)
    args = p.parse_args()

    async with scratch("abuse") as run:
        await run.migrate()
        redis, keys = run.redis, Keyspace(run.prefix, 16)
        settings = Settings(
            redis_url=REDIS_URL,
            pg_dsn=run.dsn,
            keyspace=keys,
            ledger=LedgerSettings(switch_host="bench"),
        )
        async with services(settings) as s:
            for account in ["dialer", "premium", "irsf"] + [f"acct-{i}" for i in range(ACCOUNTS)]:
                await s.accounts.create(Account(account, allow_high_risk=account == "irsf"))
            now_ms = int(time.time() * 1000)
            # not kept: the detector's process holds no heap of CDRs (the collector would walk it)
            await fill_streams(redis, keys, traffic(args.cdrs, now_ms))
            for tag in keys.tags():  # both groups exist before either reads: nothing trimmed
                for group in ("bare", "abuse"):
                    await redis.xgroup_create(keys.cdr_stream(tag), group, id="0", mkstream=True)
            limit = await bare_loop(redis, keys, args.batch, args.cdrs)
            detector = AbuseDetector(
                s,
                AbuseSettings(consumer="bench", batch_size=args.batch, inbound_stream=False),
                registry=CollectorRegistry(),
            )
            try:
                cpu, start = time.process_time(), time.perf_counter()
                done = await detector.drain_once()
                ours = done / (time.perf_counter() - start)
                cpu_us = (time.process_time() - cpu) / max(done, 1) * 1e6
            finally:
                await detector.close()
            if done != args.cdrs:
                raise SystemExit(f"detector processed {done} entries, expected {args.cdrs}")
            assert s.pool is not None
            found = await s.pool.fetch(
                "select rule, subject, severity, account from abuse_findings order by id"
            )
    print(f"abuse detectors, all rules  : {ours:10.0f} CDRs/s  (batch {args.batch})")
    print(f"bare XREADGROUP + XACK loop : {limit:10.0f} CDRs/s  (the limit of reading the streams)")
    print(f"ratio                       : {ours / limit:10.2f}  ({args.cdrs} CDRs)")
    print(f"detector's own CPU per CDR  : {cpu_us:10.0f} µs  (Redis's share is not counted)")
    summary = sorted({(f["account"], f"{f['rule']}/{f['subject']}", f["severity"]) for f in found})
    print(f"findings                    : {len(found)}  {summary}")


if __name__ == "__main__":
    asyncio.run(main())
