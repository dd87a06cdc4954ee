"""Notices of a suspension lifted (an operator lifted the abuse finding that held it), read
from the findings' timeline (abuse's table, never its code): once per lifting. The warning
and the suspension are told by abuse itself, in the same step that takes them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from notify import contacts
from notify.notices import enqueue
from notify.settings import NotifySettings

_PENDING = (
    "select e.id, e.finding_id, f.account from abuse_finding_events e"
    " join abuse_findings f on f.id = e.finding_id where e.event = 'resumed'"
    " and not exists (select 1 from notices n where n.account = f.account"
    " and n.kind = 'abuse_resumed' and n.dedupe_key = e.id::text)"
    " order by e.id limit $1"
)


async def scan(pool: asyncpg.Pool, settings: NotifySettings, now: datetime) -> int:
    """Record the notices of suspensions lifted and not yet told; how many were created."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_PENDING, settings.batch):
            data = {"account": row["account"], "finding": row["finding_id"]}
            contact = await contacts.get(conn, row["account"])
            key = str(row["id"])
            created += len(
                await enqueue(conn, settings, contact, "abuse_resumed", data, key, now)
            )
    return created
