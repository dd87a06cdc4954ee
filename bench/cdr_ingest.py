"""CDRs per second moved by the CDR writer from Redis streams into PostgreSQL, and in the
same run a plain COPY of the same rows into a table with the same columns and indexes (no
partitions, no upsert, no Redis): the physical limit of this PostgreSQL for these rows.
The two alternate in rounds (a slice of the CDRs each), so that both see the same load on a
shared machine; prints each round's ratio and the median. Also prints the CPU time per row
of each side (this process, and its PostgreSQL backend when PostgreSQL runs on this host):
on a machine whose cores are all busy, that is what decides the rows/s.

Works in a throwaway database and a throwaway Redis key prefix, removed afterwards.

    .venv/bin/python bench/cdr_ingest.py [--cdrs 100000] [--rounds 4] [--batch 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from redis.asyncio import Redis

from bench.harness import scratch
from cdr.model import COLUMNS, Cdr
from cdr.writer import CdrWriter, WriterSettings
from rating.keys import Keyspace

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DESTINATIONS = [
    ("0601234567", "+48601234567", "mobile", "4860", "Poland mobile", 190_000),
    ("0221234567", "+48221234567", "geographic", "4822", "Poland Warsaw", 90_000),
    ("0121234567", "+48121234567", "geographic", "4812", "Poland Krakow", 90_000),
    ("004930123456", "+4930123456", "international", "49", "Germany", 250_000),
]


def ms(at: datetime) -> str:
    return str((at - EPOCH) // timedelta(milliseconds=1))


def fake_cdr(n: int, rng: random.Random, now: datetime) -> dict[str, str]:
    """One stream entry as the ledger writes it: mostly finished calls, some denied, some
    left unanswered, spread over the last 40 days (two monthly partitions or three)."""
    raw, e164, klass, prefix, name, per_min = rng.choice(DESTINATIONS)
    account = f"acct-{rng.randrange(2000)}"
    started = now - timedelta(seconds=rng.randrange(40 * 86400))
    fields = {
        "call_id": f"bench-{n}",
        "account": account,
        "decision": "ALLOW",
        "reason": "OK",
        "raw": raw,
        "e164": e164,
        "class": klass,
        "caller": f"60{rng.randrange(10**7):07d}",
        "switch": "bench",
        "prefix": prefix,
        "rate_name": name,
        "deck": "retail",
        "deck_version": "3",
        "currency": "PLN",
        "authorized_at": ms(started),
    }
    if rng.random() < 0.08:
        fields |= {"state": "denied", "decision": "DENY", "reason": "INSUFFICIENT_CREDIT"}
        fields |= {"disposition": "DENIED", "cost": "0", "billsec": "0", "ended_at": ms(started)}
        return fields
    billsec = 0 if rng.random() < 0.2 else int(rng.expovariate(1 / 150)) + 1
    ring = rng.randrange(2, 25)
    answered = started + timedelta(seconds=ring)
    cost = -(-billsec * per_min // 60 // 100) * 100  # per second, rounded up to 4 decimals
    fields |= {
        "state": "finished",
        "granted": "3600",
        "reserved": str(60 * per_min),
        "answered": "1" if billsec else "0",
        "answered_at": ms(answered) if billsec else "",
        "ended_at": ms(answered + timedelta(seconds=billsec)),
        "billsec": str(billsec),
        "rated_cost": str(cost),
        "cost": str(cost),
        "disposition": "ANSWER" if billsec else "NOANSWER",
        "hangup_cause": "16" if billsec else "19",
        "prior_state": "open",
    }
    return fields


async def fill_streams(redis: Redis, keys: Keyspace, entries: list[dict[str, str]]) -> None:
    for start in range(0, len(entries), 2000):
        pipe = redis.pipeline(transaction=False)
        for fields in entries[start : start + 2000]:
            pipe.xadd(keys.cdr_stream(keys.tag(fields["account"])), fields)  # type: ignore[arg-type]
        await pipe.execute()


def backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend, when it runs on this host (else None)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds spent by this process and by one PostgreSQL backend meanwhile."""

    def __init__(self) -> None:
        self.python = 0.0
        self.pg: float | None = 0.0

    async def measure(self, conn: asyncpg.Connection, work: Any) -> None:
        pid = await conn.fetchval("select pg_backend_pid()")
        python, pg = time.process_time(), backend_cpu(pid)
        await work
        self.python += time.process_time() - python
        after = backend_cpu(pid)
        self.pg = None if pg is None or after is None or self.pg is None else self.pg + after - pg

    def per_row(self, rows: int) -> str:
        pg = "?" if self.pg is None else f"{self.pg / rows * 1e6:.1f}"
        return f"{self.python / rows * 1e6:5.1f} us Python + {pg} us PostgreSQL backend"


async def run_writer(writer: CdrWriter, total: int) -> float:
    start = time.perf_counter()
    written = 0
    while written < total:
        written += await writer.drain_once()
    return total / (time.perf_counter() - start)


async def run_copy(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> float:
    start = time.perf_counter()
    await conn.copy_records_to_table("cdrs_limit", records=rows, columns=list(COLUMNS))
    return len(rows) / (time.perf_counter() - start)


async def timed(work: Any, cell: list[float]) -> None:
    cell.append(await work)


async def rounds(
    redis: Redis,
    keys: Keyspace,
    dsn: str,
    args: argparse.Namespace,
    entries: list[dict[str, str]],
    cpu: tuple[Cpu, Cpu],
) -> list[tuple[float, float]]:
    rows = [Cdr.from_stream(e).row() for e in entries]
    size = -(-len(entries) // args.rounds)
    out: list[tuple[float, float]] = []
    limit_conn = await asyncpg.connect(dsn)
    try:
        # the indexes of a partition of cdrs: the parent's, and the call's claim (0090)
        await limit_conn.execute(
            "create table cdrs_limit (like cdrs including defaults including indexes);"
            " create unique index on cdrs_limit (call_id, switch, account)"
        )
        async with CdrWriter(
            redis, keys, dsn, WriterSettings(consumer="bench", batch_size=args.batch)
        ) as writer:
            await fill_streams(redis, keys, entries[:1])  # the writer's connection is made
            await writer.drain_once()
            for start in range(1, len(entries), size):
                await fill_streams(redis, keys, entries[start : start + size])
                got: list[float] = []
                conn = await writer._connection()
                await cpu[0].measure(
                    conn, timed(run_writer(writer, len(entries[start : start + size])), got)
                )
                await cpu[1].measure(
                    limit_conn, timed(run_copy(limit_conn, rows[start : start + size]), got)
                )
                ours, limit = got
                print(
                    f"round: writer {ours:8.0f} rows/s, COPY {limit:8.0f} rows/s,"
                    f" ratio {ours / limit:.2f}",
                    flush=True,
                )
                out.append((ours, limit))
    finally:
        await limit_conn.close()
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cdrs", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=WriterSettings().batch_size)
    args = p.parse_args()

    rng = random.Random(7)
    now = datetime.now(UTC)
    entries = [fake_cdr(n, rng, now) for n in range(args.cdrs)]
    async with scratch("cdr") as run:
        await run.migrate()
        keys = Keyspace(run.prefix, 16)
        cpu = (Cpu(), Cpu())
        results = await rounds(run.redis, keys, run.dsn, args, entries, cpu)
        check = await asyncpg.connect(run.dsn)
        try:
            stored = await check.fetchval("select count(*) from cdrs")
        finally:
            await check.close()
        if stored != args.cdrs:
            raise SystemExit(f"writer stored {stored} rows, expected {args.cdrs}")
    ours = statistics.median(r[0] for r in results)
    limit = statistics.median(r[1] for r in results)
    ratios = sorted(r[0] / r[1] for r in results)
    print(f"CDR writer, Redis -> PostgreSQL : {ours:10.0f} rows/s  (median; batch {args.batch})")
    print(f"plain COPY of the same rows     : {limit:10.0f} rows/s  (the limit of this PostgreSQL)")
    print(
        f"ratio                           : {statistics.median(ratios):10.2f}  (median of"
        f" {len(ratios)} rounds, {ratios[0]:.2f}-{ratios[-1]:.2f}; {args.cdrs} CDRs)"
    )
    print(f"CPU per row, writer             : {cpu[0].per_row(args.cdrs - 1)} (Redis not counted)")
    print(f"CPU per row, plain COPY         : {cpu[1].per_row(args.cdrs - 1)}")


if __name__ == "__main__":
    asyncio.run(main())
