"""One pass of the notification worker: find balance threshold crossings of prepaid accounts,
then deliver what is due. `now` is an argument; only the command reads the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from notify import contacts
from notify.abuse import scan as resumed_notices
from notify.complaints import scan as complaint_notices
from notify.delivery import deliver_due
from notify.metrics import NotifyMetrics
from notify.notices import enqueue
from notify.outages import scan as outage_notices
from notify.plan_fees import scan as plan_fee_notices
from notify.price_changes import scan as price_change_notices
from notify.settings import NotifySettings
from notify.thresholds import kind_for, observe
from notify.trials import scan as trial_notices
from rating.accounts import Account, AccountKind, AccountNotFound, AccountStatus
from runtime.services import Services


async def scan_account(
    s: Services, settings: NotifySettings, account: Account, now: datetime
) -> list[int]:
    """Observe the account's live balance against its thresholds; ids of notices created."""
    assert s.pool is not None
    try:
        balance = (await s.accounts.live(account.id)).balance
    except AccountNotFound:  # not mirrored to Redis yet: nothing to compare
        return []
    created: list[int] = []
    async with s.pool.acquire() as conn, conn.transaction():
        contact = await contacts.get(conn, account.id)
        for threshold in contact.thresholds or settings.thresholds:
            crossing = await observe(conn, account.id, threshold, balance, now)
            if crossing is None:
                continue
            data = {
                "account": account.id,
                "currency": account.currency,
                "balance_micro": balance,
                "threshold_micro": threshold,
            }
            created += await enqueue(
                conn, settings, contact, kind_for(threshold), data, f"{threshold}#{crossing}", now
            )
    return created


async def scan(s: Services, settings: NotifySettings, now: datetime) -> int:
    """Crossings of every prepaid account that is not closed; notices created."""
    count = 0
    for account in await s.accounts.all():
        if account.kind is AccountKind.PREPAID and account.status is not AccountStatus.CLOSED:
            count += len(await scan_account(s, settings, account, now))
    return count


async def tick(
    s: Services,
    settings: NotifySettings,
    now: datetime,
    session: aiohttp.ClientSession | None = None,
    metrics: NotifyMetrics | None = None,
) -> dict[str, Any]:
    assert s.pool is not None
    created = (
        await scan(s, settings, now)
        + await complaint_notices(s.pool, settings, now)
        + await outage_notices(s.pool, settings, now)
        + await trial_notices(s.pool, settings, now, settings.trial_notice_days)
        + await resumed_notices(s.pool, settings, now)
        + await price_change_notices(s.pool, settings, now)
        + await plan_fee_notices(s.pool, settings, now)
    )
    delivered = await deliver_due(s.pool, settings, now, session)
    if metrics is not None:
        metrics.delivered(delivered.sent, delivered.retried, delivered.failed)
        await metrics.export(s.pool)
    return {"at": now.isoformat(), "created": created, **delivered.as_dict()}
