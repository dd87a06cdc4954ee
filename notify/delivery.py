"""Delivering due notices: each is claimed under a row lock (several workers may run), sent,
and marked sent, retried later with a doubling delay, or failed after the last attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
import asyncpg

from notify import mail, webhook
from notify.delivery_result import Result
from notify.notices import Notice, from_row
from notify.settings import NotifySettings


@dataclass
class Delivered:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}


async def _send(
    settings: NotifySettings, session: aiohttp.ClientSession, notice: Notice, now: datetime
) -> Result:
    if notice.channel == "webhook":
        return await webhook.send(
            session, settings.webhook_secret, notice, now, settings.webhook_timeout_s
        )
    if notice.channel == "email":
        return await mail.send(settings, notice)
    return Result.fail(f"no channel {notice.channel!r}")


async def deliver_one(
    pool: asyncpg.Pool,
    settings: NotifySettings,
    session: aiohttp.ClientSession,
    now: datetime,
) -> Result | None:
    """Deliver the oldest due notice; None when none is due."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select * from notices where status = 'pending' and next_attempt_at <= $1"
            " order by next_attempt_at, id limit 1 for update skip locked",
            now,
        )
        if row is None:
            return None
        notice = from_row(row)
        result = await _send(settings, session, notice, now)
        attempts = notice.attempts + 1
        if result.sent:
            status, at = "sent", now
        elif result.retry and attempts < settings.max_attempts:
            status, at = "pending", now + timedelta(seconds=settings.backoff_s(attempts))
        else:
            status, at = "failed", now
        await conn.execute(
            "update notices set status = $2, attempts = $3, next_attempt_at = $4,"
            " last_error = $5, sent_at = case when $2 = 'sent' then $6 else sent_at end"
            " where id = $1",
            notice.id,
            status,
            attempts,
            at,
            result.error,
            now,
        )
    return Result(result.sent, status == "pending", result.error)


async def deliver_due(
    pool: asyncpg.Pool,
    settings: NotifySettings,
    now: datetime,
    session: aiohttp.ClientSession | None = None,
) -> Delivered:
    """Deliver up to `settings.batch` notices due at `now`."""
    done = Delivered()
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        for _ in range(settings.batch):
            result = await deliver_one(pool, settings, client, now)
            if result is None:
                break
            if result.sent:
                done.sent += 1
            elif result.retry:
                done.retried += 1
            else:
                done.failed += 1
            if result.error:
                done.errors.append(result.error)
    finally:
        if own:
            await client.close()
    return done
