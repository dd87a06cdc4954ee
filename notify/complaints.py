"""Notices about complaints (the register is billing's: this reads its table, never its
code, so the back-office packages stay apart): receipt, with the answer's deadline, and the
answer (given or deemed). Required notices: no opt-out. Each is sent once per complaint."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from notify import contacts
from notify.notices import enqueue
from notify.settings import NotifySettings
from notify.templates import DECISIONS

ANSWERED = tuple(DECISIONS)

# complaints lacking the notice of `$1` kind; answered ones only for the answer's
_PENDING = (
    "select c.*, a.timezone, a.currency from complaints c join accounts a on a.id = c.account"
    " where ($1 = 'complaint_received' or c.status = any($2::text[]))"
    " and not exists (select 1 from notices n where n.account = c.account and n.kind = $1"
    " and n.dedupe_key = c.id::text) order by c.id limit $3"
)


def _data(row: asyncpg.Record) -> dict[str, object]:
    decision = DECISIONS.get(row["status"], ("", ""))
    zone = ZoneInfo(row["timezone"])
    return {
        "account": row["account"],
        "currency": row["currency"],
        "complaint": row["id"],
        # the deadline is the end of the day before due_at, in the customer's calendar
        "due": (row["due_at"].astimezone(zone) - timedelta(days=1)).date().isoformat(),
        "status": row["status"],
        "decision_pl": decision[0],
        "decision_en": decision[1],
        "answer": row["answer"],
        "credited_micro": row["credited"],
    }


async def scan(pool: asyncpg.Pool, settings: NotifySettings, now: datetime) -> int:
    """Record the complaint notices not yet recorded; how many were created."""
    created = 0
    for kind in ("complaint_received", "complaint_answered"):
        async with pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(_PENDING, kind, list(ANSWERED), settings.batch):
                contact = await contacts.get(conn, row["account"])
                created += len(
                    await enqueue(conn, settings, contact, kind, _data(row), str(row["id"]), now)
                )
    return created
