"""Notices of plans' fees (terms §7.2: charged in advance), read from the ledger entries the
bill run booked (referenced `plan/YYYY-MM/ASSIGNMENT`, see billing/plan_fees.py): once per
entry, with the plan, the month and the amount."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from notify import contacts
from notify.money_notice import money_data
from notify.notices import enqueue
from notify.settings import NotifySettings

_PENDING = (
    "select e.account, e.reference, e.amount, e.note, p.plan, a.currency"
    " from ledger_entries e join accounts a on a.id = e.account"
    " join account_plans p on p.id = split_part(e.reference, '/', 3)::bigint"
    " where e.kind = 'fee' and e.reference like 'plan/%'"
    " and not exists (select 1 from notices n where n.account = e.account"
    " and n.kind = 'plan_fee' and n.dedupe_key = e.reference)"
    " order by e.account, e.seq limit $1"
)


async def scan(pool: asyncpg.Pool, settings: NotifySettings, now: datetime) -> int:
    """Record the plan fee notices not yet recorded; how many were created."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_PENDING, settings.batch):
            # the fee is booked as a debit: the notice states the amount charged
            data = money_data(
                row["account"],
                row["currency"],
                -row["amount"],
                plan=row["plan"],
                period=row["reference"].split("/")[1],
                note=row["note"],
            )
            contact = await contacts.get(conn, row["account"])
            created += len(
                await enqueue(conn, settings, contact, "plan_fee", data, row["reference"], now)
            )
    return created
