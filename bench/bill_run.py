"""`bill run` over many accounts with a month of CDRs, against two limits measured in the
same run:

- read: one plain `SELECT ... GROUP BY account, prefix` over the same month's CDRs (the
  issue's yardstick: every postpaid invoice's call lines come from that aggregation);
- write: `INSERT ... SELECT` of the rows the run wrote (its documents and ledger entries)
  into tables of the same columns and indexes, server-side: what writing them costs
  PostgreSQL with no client, no Redis and no logic.

Prints accounts/s of the run, both limits and their ratios, and the time of a repeat run
with nothing to do (how many accounts it left alone, and its time over the first run's).

The data: a fifth of the accounts postpaid, the rest prepaid with a top-up each (an invoice
per top-up); every account has a monthly subscription (a fee) and `--calls` calls in the
month; one prepaid account in a hundred went negative in the month (the lifecycle's walk).
So the first run books a fee per account, issues a document per account and reads every
CDR of the month.

    .venv/bin/python bench/bill_run.py [--accounts 1000 10000 100000] [--calls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from bench.panel import bench_services
from billing.period import Period
from billing.run import bill_run
from billing.settings import BillingSettings
from cdr.partitions import ensure_months
from runtime.services import Services

PERIOD = Period(2026, 10)
NOW = datetime(2026, 11, 2, 6, tzinfo=UTC)  # the run of 2 November, 07:00 in Warsaw
PLN = 1_000_000

FILL = [
    # accounts: every fifth postpaid (a credit limit), the others prepaid with a top-up
    """
    insert into accounts (id, kind, status, currency, country, timezone, credit_limit,
        ledger_seq, created_at, updated_at)
    select 'b-' || lpad(n::text, 7, '0'), case when n % 5 = 0 then 'postpaid' else 'prepaid' end,
        'active', 'PLN', 'PL', 'Europe/Warsaw', case when n % 5 = 0 then 100000000 else 0 end,
        case when n % 5 = 0 then 0 when n % 100 = 1 then 2 else 1 end, $2, $2
    from generate_series(1, $1) n
    """,
    """
    insert into ledger_entries (account, seq, kind, amount, reference, note, created_at)
    select 'b-' || lpad(n::text, 7, '0'), 1, 'topup', 50000000, 'bank-' || n, '', $2
    from generate_series(1, $1) n where n % 5 <> 0
    """,
    """
    insert into ledger_entries (account, seq, kind, amount, reference, note, created_at)
    select 'b-' || lpad(n::text, 7, '0'), 2, 'adjustment', -60000000, 'adj-' || n, '',
        $2::timestamptz + interval '14 days'
    from generate_series(1, $1) n where n % 100 = 1
    """,
    """
    insert into subscriptions (account, name, monthly_fee, started_on)
    select 'b-' || lpad(n::text, 7, '0'), 'plan', 15000000, date '2026-01-01'
    from generate_series(1, $1) n
    """,
    # $3 calls per account, spread over the month, to three destinations
    """
    insert into cdrs (call_id, started_at, account, state, decision, reason, raw, e164,
        number_class, switch, prefix, rate_name, deck, deck_version, currency,
        authorized_at, answered_at, ended_at, billsec, answered, rated_cost, cost,
        disposition, hangup_cause, stream_id)
    select 'c-' || n || '-' || k, t, 'b-' || lpad(n::text, 7, '0'), 'finished', 'ALLOW', 'OK',
        '0601234567', '+48601234567', 'mobile', 'bench', p.prefix, p.name, 'retail', 1, 'PLN',
        t, t + interval '3 seconds', t + interval '3 seconds' + (k * 7 % 300) * interval '1 s',
        k * 7 % 300, true, (k * 7 % 300) * 3200, (k * 7 % 300) * 3200, 'ANSWER', '16', n || '-' || k
    from generate_series(1, $1) n, generate_series(1, $3) k,
        lateral (select $2::timestamptz + interval '1 day'
                        + ((n * 7919 + k * 104729) % 2500000) * interval '1 s' as t) s,
        lateral (select (array['4860', '4822', '4420'])[1 + (n + k) % 3] as prefix,
                        (array['Poland mobile', 'Poland Warsaw', 'UK London'])[1 + (n + k) % 3]
                 as name) p
    """,
]
LIMIT = """
select account, prefix, count(*), sum(billsec), sum(cost) from cdrs
where started_at >= $1 and started_at < $2 and state = 'finished' and answered
group by account, prefix
"""


async def fill(s: Services, accounts: int, calls: int) -> None:
    assert s.pool is not None
    start, _ = PERIOD.bounds("Europe/Warsaw")
    async with s.pool.acquire() as conn:
        await ensure_months(conn, [start, start + timedelta(days=20)])
        for sql in FILL:
            args = (accounts, start, calls)[: max(n for n in (1, 2, 3) if f"${n}" in sql)]
            await conn.execute(sql, *args)
        await conn.execute("analyze")
    # Redis as the ledger holds them: settings, the entries applied, the calls' costs spent
    last = ""
    while page := await s.accounts.page(last, 5000):
        last = page[-1][0].id
        spent = {
            r["account"]: int(r["spent"])
            for r in await s.pool.fetch(
                "select account, sum(cost) as spent from cdrs where account = any($1::text[])"
                " group by account",
                [a.id for a, _ in page],
            )
        }
        async with s.redis.pipeline(transaction=False) as pipe:
            for a, seq in page:
                n = int(a.id[2:])
                entries = 0 if n % 5 == 0 else 50 * PLN - (60 * PLN if n % 100 == 1 else 0)
                money = {
                    "balance": entries - spent.get(a.id, 0),
                    "ledger_seq": seq,
                    "entries_total": entries,
                    "spent": spent.get(a.id, 0),
                    "reserved": 0,
                }
                pipe.hset(s.settings.keyspace.account(a.id), mapping={**a.redis_fields(), **money})
            await pipe.execute()


async def timed_limit(s: Services) -> float:
    assert s.pool is not None
    start, end = PERIOD.bounds("Europe/Warsaw")
    started = time.perf_counter()
    await s.pool.fetch(LIMIT, start, end)
    return time.perf_counter() - started


async def timed_write(s: Services) -> float:
    """The run's rows (documents, entries booked at NOW) written again, server-side."""
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        for table in ("billing_documents", "ledger_entries"):
            await conn.execute(f"create table bench_{table} (like {table} including all)")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "insert into bench_billing_documents select * from billing_documents"
            )
            await conn.execute(
                "insert into bench_ledger_entries select * from ledger_entries"
                " where created_at = $1",
                NOW,
            )
        return time.perf_counter() - started


async def one_size(accounts: int, calls: int) -> None:
    async with bench_services("bill") as s:
        try:
            t0 = time.perf_counter()
            await fill(s, accounts, calls)
            filled = time.perf_counter() - t0
            limit = await timed_limit(s)
            started = time.perf_counter()
            report = await bill_run(s.accounts, PERIOD, BillingSettings(), NOW)
            took = time.perf_counter() - started
            limit = min(limit, await timed_limit(s))
            write = await timed_write(s)
            started = time.perf_counter()
            again = await bill_run(s.accounts, PERIOD, BillingSettings(), NOW)
            repeat = time.perf_counter() - started
            skipped = again.skipped
            await check(s, accounts, report.documents, again.changed, report.failed)
        finally:
            await unlink_all(s)
    print(
        f"{accounts:>7} accounts, {accounts * calls:>8} CDRs (filled in {filled:5.1f} s):"
        f" bill run {took:7.2f} s = {accounts / took:7.0f} accounts/s;"
        f" plain GROUP BY {limit:6.2f} s (ratio {limit / took:5.3f});"
        f" its rows written server-side {write:6.2f} s (ratio {write / took:5.3f});"
        f" repeat run {repeat:6.2f} s ({skipped} accounts left alone;"
        f" ratio repeat/first {repeat / took:5.3f})",
        flush=True,
    )


async def check(
    s: Services, accounts: int, documents: list[object], changed: bool, failed: dict[str, str]
) -> None:
    """The run did what it should: a document per account, numbers gapless, and the
    repeat found nothing to do."""
    assert s.pool is not None
    if failed or changed or len(documents) != accounts:
        raise SystemExit(f"unexpected: {len(documents)} documents, changed={changed}, {failed}")
    gaps = await s.pool.fetchval(
        "select count(*) from document_series s"
        " where s.last_seq <> (select count(*) from billing_documents d where d.series = s.series)"
    )
    if gaps:
        raise SystemExit("numbering has gaps")


async def unlink_all(s: Services) -> None:
    """The keys of this run, 5,000 per round trip (the services' own clean-up finds none)."""
    pattern = f"{s.settings.keyspace.prefix}:*"
    doomed = [k async for k in s.redis.scan_iter(match=pattern, count=5000)]
    for start in range(0, len(doomed), 5000):
        await s.redis.unlink(*doomed[start : start + 5000])


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--calls", type=int, default=10, help="CDRs per account in the month")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    for n in args.accounts:
        await one_size(n, args.calls)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
