"""Reading CDRs back: an account's calls over a period, one call by id."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from cdr.model import Cdr
from core.pg import Conn


async def cdrs_for(
    conn: Conn,
    account: str,
    start: datetime,
    end: datetime,
    *,
    states: Collection[str] | None = None,
    limit: int = 10_000,
) -> list[Cdr]:
    """Calls of `account` that started in [start, end), oldest first (the range prunes
    partitions)."""
    rows = await conn.fetch(
        "select * from cdrs where account = $1 and started_at >= $2 and started_at < $3"
        " and ($4::text[] is null or state = any($4::text[]))"
        " order by started_at, call_id limit $5",
        account,
        start,
        end,
        None if states is None else list(states),
        limit,
    )
    return [Cdr.from_row(r) for r in rows]


async def cdr_by_id(conn: Conn, switch: str, account: str, call_id: str) -> Cdr | None:
    """The CDR of one call, named by its identity (switch, account, call id)."""
    # one probe of each partition's unique index on the call (its claim, cdr/ids.py)
    row = await conn.fetchrow(
        "select * from cdrs where call_id = $3 and switch = $1 and account = $2",
        switch,
        account,
        call_id,
    )
    return None if row is None else Cdr.from_row(row)
