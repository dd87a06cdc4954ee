"""When a prepaid balance went negative, without walking the whole history.

`negative_since` walks back from the balance at `now` through ledger entries and charged
calls, newest first, until the balance before one was >= 0: that event began the stretch.
Only the events since the stretch began are needed, so the walk reads a window ending at
`now`: from the run's mark (billing_negative_marks, where the last run found the stretch
began) or from `WINDOW` back, and a wider one (then all history) only when the balance was
already negative at the window's start. The mark is a hint: the result is always the one the
full walk gives. Calls are found by their end; `CALL_SPAN` bounds how long before its end a
call started, so the window reads only the CDR partitions it covers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.pg import Conn

WINDOW = timedelta(days=35)
CALL_SPAN = timedelta(days=2)  # longer than any call (max_call_s, 3 h by default)

EVENTS = """
select created_at as at, amount from ledger_entries
where account = $1 and created_at >= $2 and created_at <= $3
union all
select ended_at as at, -cost as amount from cdrs
where account = $1 and cost > 0 and ended_at >= $2 and ended_at <= $3
  and started_at >= $4 and started_at <= $3
order by at desc
"""
ALL_EVENTS = """
select created_at as at, amount from ledger_entries where account = $1 and created_at <= $2
union all
select ended_at as at, -cost as amount from cdrs
where account = $1 and cost > 0 and ended_at <= $2 and started_at <= $2
order by at desc
"""
# What happened after `now` (a run acting as of the past), per account of a batch
AFTER = """
select account, sum(amount)::bigint as amount from (
    select account, amount from ledger_entries where account = any($1::text[]) and created_at > $2
    union all
    select account, -cost from cdrs where account = any($1::text[]) and cost > 0
      and ended_at > $2 and started_at > $3
) x group by account
"""


async def after_now(conn: Conn, accounts: Sequence[str], now: datetime) -> dict[str, int]:
    """The money each account gained (negative: lost) after `now`, as far as is recorded."""
    rows = await conn.fetch(AFTER, list(accounts), now, now - CALL_SPAN)
    return {r["account"]: int(r["amount"]) for r in rows}


def _crossing(balance: int, events: Sequence[tuple[datetime, int]]) -> datetime | None:
    """Walking back from `balance` through `events` (newest first): when the balance
    before one was >= 0, that event's time; None if it stays negative throughout."""
    for at, amount in events:
        before = balance - amount
        if before >= 0:
            return at
        balance = before
    return None


async def since_of(
    conn: Conn, account: str, balance: int, now: datetime, hint: datetime | None = None
) -> datetime | None:
    """When the stretch of negative balance holding at `now` began (`balance`: the balance
    at `now`); None when it is not negative."""
    if balance >= 0:
        return None
    starts = [s for s in (hint, now - WINDOW, now - 4 * WINDOW) if s is not None and s <= now]
    for start in sorted(set(starts), reverse=True):
        rows = await conn.fetch(EVENTS, account, start, now, start - CALL_SPAN)
        at = _crossing(balance, [(r["at"], r["amount"]) for r in rows])
        if at is not None:
            return at
    rows = await conn.fetch(ALL_EVENTS, account, now)
    at = _crossing(balance, [(r["at"], r["amount"]) for r in rows])
    if at is not None:
        return at
    created: datetime = await conn.fetchval(
        "select created_at from accounts where id = $1", account
    )
    return created


WINDOWS = """
select w.account, x.at, x.amount
from unnest($1::text[], $2::timestamptz[]) as w(account, start_at)
cross join lateral (
    select created_at as at, amount from ledger_entries e
    where e.account = w.account and e.created_at >= w.start_at and e.created_at <= $3
    union all
    select ended_at as at, -cost as amount from cdrs c
    where c.account = w.account and c.cost > 0 and c.ended_at >= w.start_at
      and c.ended_at <= $3 and c.started_at >= w.start_at - $4::interval and c.started_at <= $3
) x
order by w.account, x.at desc
"""


async def since_of_many(
    conn: Conn, balances: dict[str, int], now: datetime, hints: dict[str, datetime]
) -> dict[str, datetime]:
    """`since_of` for many negative balances (account -> balance at `now`): one read of
    each account's window (from its hint, or `WINDOW` back), then `since_of` alone for the
    few whose stretch began before it."""
    starts = {
        a: h if (h := hints.get(a)) is not None and h <= now else now - WINDOW for a in balances
    }
    rows = await conn.fetch(WINDOWS, list(starts), list(starts.values()), now, CALL_SPAN)
    events: dict[str, list[tuple[datetime, int]]] = {a: [] for a in balances}
    for r in rows:
        events[r["account"]].append((r["at"], r["amount"]))
    out = {}
    for account, balance in balances.items():
        at = _crossing(balance, events[account])
        if at is None:
            at = await since_of(conn, account, balance, now)
        if at is not None:
            out[account] = at
    return out


async def marks_of(conn: Conn, accounts: Sequence[str]) -> dict[str, datetime]:
    rows = await conn.fetch(
        "select account, since from unnest($1::text[]) as a(account)"
        " join billing_negative_marks using (account)",
        list(accounts),
    )
    return {r["account"]: r["since"] for r in rows}


async def keep_marks(
    conn: Conn, negative: dict[str, datetime], cleared: Sequence[str], now: datetime
) -> None:
    """Record where the stretches of `negative` began; forget those of `cleared`."""
    if negative:
        await conn.execute(
            "insert into billing_negative_marks (account, since, checked_at)"
            " select a, s, $3 from unnest($1::text[], $2::timestamptz[]) as m(a, s)"
            " on conflict (account) do update set since = excluded.since,"
            " checked_at = excluded.checked_at",
            list(negative),
            list(negative.values()),
            now,
        )
    if cleared:
        await conn.execute(
            "delete from billing_negative_marks where account = any($1::text[])", list(cleared)
        )
