"""Notices before each step of a trial (read from billing's trials table, never its code):
the end coming (`notice_days` before it), the block (with the closing date), the closing
coming (`notice_days` before it). Each once per trial; none once the trial is paid."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from notify import contacts
from notify.notices import enqueue
from notify.settings import NotifySettings

# kind -> the condition (on trial t at $1, notice_days $2) that makes it due
_DUE = {
    "trial_ending": "t.blocked_at is null and t.ends_at - $2::interval <= $1::timestamptz"
    " and $1::timestamptz < t.ends_at",
    "trial_blocked": "t.blocked_at is not null and t.closed_at is null and $1::timestamptz"
    " >= t.blocked_at and $2::interval is not null",
    "trial_closing": "t.blocked_at is not null and t.close_at - $2::interval <= $1::timestamptz"
    " and $1::timestamptz < t.close_at",
}


def _local(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} {timezone}"


async def scan(
    pool: asyncpg.Pool, settings: NotifySettings, now: datetime, notice_days: int
) -> int:
    """Record the trial notices due at `now` and not yet recorded; how many were created."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        for kind, due in _DUE.items():
            rows = await conn.fetch(
                "select t.*, a.timezone from trials t join accounts a on a.id = t.account"
                f" where t.paid_at is null and a.status <> 'closed' and {due}"
                " and not exists (select 1 from notices n where n.account = t.account"
                " and n.kind = $3 and n.dedupe_key = 'trial')"
                " order by t.account limit $4",
                now,
                timedelta(days=notice_days),
                kind,
                settings.batch,
            )
            for row in rows:
                data = {
                    "account": row["account"],
                    "ends": _local(row["ends_at"], row["timezone"]),
                    "close": _local(row["close_at"], row["timezone"]),
                }
                contact = await contacts.get(conn, row["account"])
                created += len(await enqueue(conn, settings, contact, kind, data, "trial", now))
    return created
