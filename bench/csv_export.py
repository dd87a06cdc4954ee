"""CSV export of 1,000,000 CDRs through the panel (HTTP download streamed from a server-side
cursor, a separate panel process on loopback): rows/s and the panel's peak memory (RSS);
and in the same run PostgreSQL's own `COPY (select ...) TO STDOUT CSV` of the same rows, the
limit. Prints both and the ratio. Works in a throwaway database and key prefix.

    .venv/bin/python bench/csv_export.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.panel import PanelProcess, bench_services
from cdr.partitions import ensure_months, month_of
from panel_api.cdr_query import CdrFilter, export_sql
from panel_api.tokens import Role, TokenStore
from rating.accounts import Account

ACCOUNT = "bench-export"

# One statement makes the rows inside PostgreSQL: no client round trips, no Python objects.
FILL_CDRS = """
insert into cdrs (call_id, started_at, account, state, decision, reason, granted_s, reserved,
    raw, e164, number_class, caller, switch, prefix, rate_name, deck, deck_version, currency,
    authorized_at, answered_at, ended_at, billsec, answered, rated_cost, cost, disposition,
    hangup_cause, stream_id)
select 'exp-' || g, t, $1, 'finished', 'ALLOW', 'OK', 3600, 190000,
    '0601' || lpad((g % 1000000)::text, 6, '0'), '+48601' || lpad((g % 1000000)::text, 6, '0'),
    'mobile',
    case when g % 1000 = 0 then '=HYPERLINK("x")'
         else '4822' || lpad((g % 10000000)::text, 7, '0') end,
    'bench', '4860', 'Poland mobile', 'retail', 1, 'PLN',
    t, t + interval '5 seconds', t + interval '5 seconds' + (g % 600) * interval '1 second',
    g % 600, true, (g % 600) * 3200, (g % 600) * 3200, 'ANSWER', '16', g || '-0'
from (select g, $2::timestamptz + g * interval '1 second' as t from generate_series(1, $3) g) s
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    now = datetime.now(UTC)
    start = now - timedelta(seconds=args.rows + 60)
    async with bench_services("csv") as s:
        assert s.pool is not None
        await s.accounts.create(Account(ACCOUNT))
        _, secret = await TokenStore(s.pool).create(Role.CUSTOMER, ACCOUNT, "bench")
        async with s.pool.acquire() as conn:
            months, at = set(), start
            while at <= now:
                months.add(month_of(at))
                at += timedelta(days=1)
            await ensure_months(conn, months)
            t0 = time.perf_counter()
            await conn.execute(FILL_CDRS, ACCOUNT, start, args.rows)
            await conn.execute("analyze cdrs")
            print(f"made {args.rows} CDRs in {time.perf_counter() - t0:.1f} s")

        period = {"from": start.isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
        async with PanelProcess(s.settings) as panel:
            idle_kib = panel.rss_kib()
            rows = 0
            size = 0
            async with aiohttp.ClientSession() as http:
                t0 = time.perf_counter()
                async with http.get(
                    f"{panel.url}/api/v1/accounts/{ACCOUNT}/cdrs.csv",
                    params=period,
                    headers={"Authorization": f"Bearer {secret}"},
                ) as r:
                    if r.status != 200:
                        raise SystemExit(f"download answered {r.status}: {await r.text()}")
                    async for chunk in r.content.iter_chunked(1 << 16):
                        rows += chunk.count(b"\n")
                        size += len(chunk)
                ours_s = time.perf_counter() - t0
            peak_kib = panel.rss_kib("VmHWM")
        rows -= 1  # the header
        if rows != args.rows:
            raise SystemExit(f"downloaded {rows} rows, expected {args.rows}")

        # the limit: the same rows, same order, straight out of PostgreSQL as CSV
        flt = CdrFilter(
            ACCOUNT, datetime.fromisoformat(period["from"]), datetime.fromisoformat(period["to"])
        )
        sql, params = export_sql(flt)
        copied = 0
        copied_bytes = 0

        async def sink(chunk: bytes) -> None:
            nonlocal copied, copied_bytes
            copied += chunk.count(b"\n")
            copied_bytes += len(chunk)

        async with s.pool.acquire() as conn:
            t0 = time.perf_counter()
            # asyncpg inlines the arguments as literals: COPY takes no parameters
            await conn.copy_from_query(sql, *params, output=sink, format="csv")
            copy_s = time.perf_counter() - t0
        if copied != args.rows:
            raise SystemExit(f"COPY gave {copied} rows, expected {args.rows}")

    ours, limit = rows / ours_s, copied / copy_s
    print(
        f"panel CSV download (HTTP, cursor) : {ours:10.0f} rows/s  {size / ours_s / 1e6:6.1f} MB/s"
        f"  ({rows} rows, {size / 1e6:.0f} MB)"
    )
    copy_mb_s = copied_bytes / copy_s / 1e6
    print(
        f"COPY (select ...) TO STDOUT CSV   : {limit:10.0f} rows/s  {copy_mb_s:6.1f} MB/s"
        "  (the limit of this PostgreSQL)"
    )
    print(f"ratio                             : {ours / limit:10.2f}")
    print(
        f"panel RSS: {idle_kib / 1024:.0f} MiB idle, {peak_kib / 1024:.0f} MiB peak during the"
        f" export (+{(peak_kib - idle_kib) / 1024:.0f} MiB for {rows} rows)"
    )


if __name__ == "__main__":
    asyncio.run(main())
