"""The cost of the price-change check (terms §7.1) on a large deck import: a deck of
`--rows` rows is stored as version 1, then version 2 (a tenth of its prefixes dearer, one
in fifty removed, one in fifty given a longer, dearer prefix) is imported with the check
and without it, alternately, in the same run (each import rolled back, so every one
compares with the same version 1). Prints the median of each, the ratio, the check's own
time, the increases it found, and the load average: the machine may be shared.

Works in a throwaway database and Redis key prefix (`bench/harness.py`), removed afterwards
(Redis is not part of what the check costs: it is not used).

    .venv/bin/python bench/price_guard.py [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import scratch
from billing.price_changes import earliest_effective, guard
from billing.settings import BillingSettings
from core.pg import Conn
from rating.deck import parse_head, read_manifest
from rating.deck_import import import_stream

MANIFEST = """name = "big"
currency = "PLN"
rates = "rates.csv"
[bands]
day = ["mon-fri 08:00-18:00"]
offpeak = ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"]
"""
HEADER = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"


def write_deck(folder: Path, rows: int, changed: bool) -> Path:
    """Prefixes with a day and an off-peak rate each (bench/deck_import.py's deck); the
    changed one as the module says."""
    folder.mkdir(exist_ok=True)
    with (folder / "rates.csv").open("w") as f:
        f.write(HEADER)
        n = 0
        prefix = 100_000
        while n < rows:
            prefix += 1
            day, off = prefix % 9000 + 1000, prefix % 7000 + 1000
            if changed and prefix % 50 == 0:
                n += 2
                continue  # removed: its calls fall to nothing shorter (no increase)
            if changed and prefix % 10 == 1:
                day, off = day + 1, off + 1
            f.write(f"{prefix},Dest {prefix},0,0.{day},60,60,0,day\n")
            f.write(f"{prefix},Dest {prefix},0,0.{off},60,60,0,offpeak\n")
            if changed and prefix % 50 == 7:
                f.write(f"{prefix}9,Dest {prefix}9,0,0.{day + 1},60,60,0,day\n")
                f.write(f"{prefix}9,Dest {prefix}9,0,0.{off},60,60,0,offpeak\n")
            n += 2
    (folder / "deck.toml").write_text(MANIFEST)
    return folder / "deck.toml"


async def store(conn: asyncpg.Connection, path: Path, **kw: Any) -> Any:
    manifest, rates_path = read_manifest(path)
    head = parse_head(manifest, str(path))
    with rates_path.open("rb") as rates:
        return await import_stream(
            conn, head, manifest, rates, rates_file=str(rates_path), source="bench", **kw
        )


async def once(conn: asyncpg.Connection, path: Path, checked: bool) -> tuple[float, float, int]:
    """(import s, check s, increases) of version 2, rolled back."""
    now = datetime.now(UTC)
    settings = BillingSettings()
    check = guard(settings, now)
    spent = [0.0]
    found = [0]

    async def timed(c: Conn, deck: str, version: int, effective_at: datetime) -> None:
        start = time.perf_counter()
        await check(c, deck, version, effective_at)
        spent[0] = time.perf_counter() - start
        found[0] = await c.fetchval(
            "select count(*) from deck_increases where deck = $1 and version = $2", deck, version
        )

    tx = conn.transaction()
    await tx.start()
    try:
        start = time.perf_counter()
        await store(
            conn, path, effective_at=earliest_effective(now, settings),
            guard=timed if checked else None,
        )  # fmt: skip
        took = time.perf_counter() - start
    finally:
        await tx.rollback()
    return took, spent[0], found[0]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with_check: list[float] = []
    without: list[float] = []
    check_s: list[float] = []
    loads = [os.getloadavg()[0]]
    async with scratch("guard") as run:
        run.tollgate("db", "upgrade")
        with tempfile.TemporaryDirectory() as tmp:
            v1 = write_deck(Path(tmp) / "v1", args.rows, changed=False)
            v2 = write_deck(Path(tmp) / "v2", args.rows, changed=True)
            conn = await asyncpg.connect(run.dsn)
            try:
                await store(conn, v1)
                for _ in range(args.rounds):
                    took, spent, increases = await once(conn, v2, checked=True)
                    with_check.append(took)
                    check_s.append(spent)
                    without.append((await once(conn, v2, checked=False))[0])
                    loads.append(os.getloadavg()[0])
            finally:
                await conn.close()
    plain, checked = statistics.median(without), statistics.median(with_check)
    print(f"import of v2 without the check : {plain:8.2f} s  (median of {args.rounds})")
    print(f"import of v2 with the check    : {checked:8.2f} s")
    print(f"ratio with / without           : {checked / plain:8.2f}  ({args.rows} rows)")
    print(f"the check itself               : {statistics.median(check_s):8.2f} s")
    print(f"increases found                : {increases:8d}")
    print(f"load average (1 min)           : {min(loads):.2f}..{max(loads):.2f}"
          f"  ({os.cpu_count()} cores)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
