"""Monthly partitions of `cdrs` (UTC months): made ahead of need, dropped past the retention
(the scheduler's daily job, or on request).

A month's partition is named cdrs_YYYY_MM and created with its unique index on the call
(the calls' claims, cdr/ids.py) by the SQL function cdr_ensure_month, which serialises
creators, so several writers and a maintenance job may call it at once. Retention drops a
month's table, claims included: no row is deleted one by one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from core.pg import Conn

MIN_RETENTION_MONTHS = 12  # complaints may be filed up to 12 months after a call
DEFAULT_RETENTION_MONTHS = 13
AHEAD_MONTHS = 2  # besides the current month
NAME = re.compile(r"^cdrs_(\d{4})_(\d{2})$")
LOCK = "select pg_advisory_xact_lock(hashtext('tollgate.cdr_partitions'))"


class RetentionError(ValueError):
    def __init__(self, months: int) -> None:
        super().__init__(
            f"retention of {months} month(s) is below the minimum of {MIN_RETENTION_MONTHS}"
        )
        self.months = months


def month_of(at: datetime) -> datetime:
    """First instant (UTC) of the month holding `at`."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def months_of(times: Iterable[datetime]) -> set[datetime]:
    """`{month_of(t) for t in times}`, cheaper for UTC times (what the CDR writer makes)."""
    months: set[tuple[int, int]] = set()
    others: set[datetime] = set()
    for t in times:
        if t.tzinfo is UTC:
            months.add((t.year, t.month))
        else:
            others.add(month_of(t))
    return {datetime(y, m, 1, tzinfo=UTC) for y, m in months} | others


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"cdrs_{month.year:04d}_{month.month:02d}"


def months_ahead(now: datetime) -> set[datetime]:
    """The months that must exist before any CDR needs them."""
    first = month_of(now)
    return {add_months(first, n) for n in range(AHEAD_MONTHS + 1)}


def retention_cutoff(now: datetime, retention_months: int) -> datetime:
    """CDRs that started before this may be dropped: whole months, counted back from the
    start of the current month, so at least `retention_months` full months stay."""
    if retention_months < MIN_RETENTION_MONTHS:
        raise RetentionError(retention_months)
    return add_months(month_of(now), -retention_months)


async def existing_months(conn: Conn) -> set[datetime]:
    rows = await conn.fetch(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = 'cdrs'::regclass"
    )
    months = set()
    for row in rows:
        m = NAME.match(row["relname"])
        if m:
            months.add(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC))
    return months


async def ensure_months(conn: Conn, months: Iterable[datetime]) -> list[str]:
    """Create the partitions of these months if missing; returns their names."""
    return [
        str(await conn.fetchval("select cdr_ensure_month($1)", month_of(m)))
        for m in sorted(set(months))
    ]


async def drop_expired(
    conn: Conn, retention_months: int = DEFAULT_RETENTION_MONTHS, now: datetime | None = None
) -> list[str]:
    """Drop the months (partitions of cdrs) that ended before the retention cutoff, and old
    rejects. Returns the partitions dropped."""
    cutoff = retention_cutoff(now or datetime.now(UTC), retention_months)
    dropped = []
    async with conn.transaction():
        await conn.execute(LOCK)
        for month in sorted(await existing_months(conn)):
            if add_months(month, 1) <= cutoff:
                await conn.execute(f'drop table "{partition_name(month)}"')
                dropped.append(partition_name(month))
        await conn.execute("delete from cdr_rejects where rejected_at < $1", cutoff)
    return dropped
