"""Notices of outage compensation (terms §9.7), read from the compensations billing booked
(its table, never its code): once per outage and account, the outage's times in the
account's zone and the amount credited. A compensation by the other provider's rule (§10c: a
month of subscription per started 12 hours beyond the first day) gets its own wording
(`outage_compensation_months`)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from notify import contacts
from notify.money_notice import money_data
from notify.notices import enqueue
from notify.settings import NotifySettings

KIND_OF_RULE = {
    "use_per_day": "outage_compensation",
    "month_per_12h": "outage_compensation_months",
}
_PENDING = (
    "select c.outage_id, c.account, c.days, c.months, c.rule, c.amount, o.started_at,"
    " o.ended_at, a.timezone,"
    " a.currency from outage_compensations c join outages o on o.id = c.outage_id"
    " join accounts a on a.id = c.account"
    " where not exists (select 1 from notices n where n.account = c.account"
    " and n.kind in ('outage_compensation', 'outage_compensation_months')"
    " and n.dedupe_key = c.outage_id::text)"
    " order by c.outage_id, c.account limit $1"
)


def _local(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M}"


async def scan(pool: asyncpg.Pool, settings: NotifySettings, now: datetime) -> int:
    """Record the compensation notices not yet recorded; how many were created."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_PENDING, settings.batch):
            data = money_data(
                row["account"],
                row["currency"],
                row["amount"],
                outage=row["outage_id"],
                days=row["days"],
                months=row["months"],
                start=_local(row["started_at"], row["timezone"]),
                end=f"{_local(row['ended_at'], row['timezone'])} {row['timezone']}",
            )
            contact = await contacts.get(conn, row["account"])
            key = str(row["outage_id"])
            kind = KIND_OF_RULE[row["rule"]]
            created += len(await enqueue(conn, settings, contact, kind, data, key, now))
    return created
