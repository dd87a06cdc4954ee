"""`tollgate deck import` of a large deck, and in the same run a plain COPY of the same CSV
into a table (text columns, no validation): the limit of loading these bytes into this
PostgreSQL. Prints both, the ratio, the importing process's peak RSS against the 150 MB
limit, and the time to re-import the unchanged deck (recognised by its hash) against a
command that connects and does nothing. The COPY is timed before and after the import
(their mean is the limit), and the load average is printed: the machine may be shared.

Works in a throwaway database and a throwaway Redis key prefix, removed afterwards.

    .venv/bin/python bench/deck_import.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import scratch

RSS_LIMIT_MB = 150
MANIFEST = """name = "big"
currency = "PLN"
rates = "rates.csv"
[bands]
day = ["mon-fri 08:00-18:00"]
offpeak = ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"]
"""
HEADER = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"


def write_deck(folder: Path, rows: int) -> Path:
    """Prefixes with a day and an off-peak rate each, 30/6 on some: a carrier's A-Z deck."""
    with (folder / "rates.csv").open("w") as f:
        f.write(HEADER)
        n = 0
        prefix = 100_000
        while n < rows:
            prefix += 1
            f.write(f"{prefix},Dest {prefix},0,0.{prefix % 9000 + 1000},60,60,0,day\n")
            f.write(f"{prefix},Dest {prefix},0,0.{prefix % 7000 + 1000},60,60,0,offpeak\n")
            n += 2
    (folder / "deck.toml").write_text(MANIFEST)
    return folder / "deck.toml"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def plain_copy(dsn: str, csv_path: Path) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        columns = ", ".join(f"{c} text" for c in HEADER.strip().split(","))
        await conn.execute(f"create table if not exists deck_limit ({columns})")
        await conn.execute("truncate deck_limit")
        start = time.perf_counter()
        await conn.copy_to_table("deck_limit", source=csv_path, format="csv", header=True)
        return time.perf_counter() - start
    finally:
        await conn.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    args = p.parse_args()
    async with scratch("deck") as run:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_deck(Path(tmp), args.rows)
            run.tollgate("db", "upgrade")
            # the limit is timed just before and just after the import: the shared machine's
            # load moves within seconds, and their mean stands beside the import
            before = await plain_copy(run.dsn, Path(tmp) / "rates.csv")
            load = os.getloadavg()[0]
            cpu_before = _children_cpu()
            ours = run.tollgate("deck", "import", str(manifest))
            cpu = _children_cpu() - cpu_before
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            after = await plain_copy(run.dsn, Path(tmp) / "rates.csv")
            limit = (before + after) / 2
            again = run.tollgate("deck", "import", str(manifest))
            floor = run.tollgate("db", "upgrade")  # nothing to apply: connecting, no work
    rows = args.rows
    print(f"tollgate deck import           : {rows / ours:10.0f} rows/s  ({ours:.2f} s)")
    print(
        f"plain COPY of the same CSV     : {rows / limit:10.0f} rows/s  (the limit;"
        f" {before:.2f} s before, {after:.2f} s after)"
    )
    print(f"ratio                          : {limit / ours:10.2f}  ({rows} rows)")
    print(f"peak RSS of the import         : {peak_mb:10.0f} MB  (limit {RSS_LIMIT_MB} MB)")
    print(f"CPU time of the import process : {cpu:10.2f} s  (user + system)")
    print(f"re-import of the unchanged deck: {again:10.2f} s")
    print(f"a command doing nothing        : {floor:10.2f} s  (db upgrade, nothing to apply)")
    print(f"load average (1 min) at start  : {load:10.2f}  ({os.cpu_count()} cores)")


if __name__ == "__main__":
    asyncio.run(main())
