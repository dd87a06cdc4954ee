"""Delivering due notices. Webhooks: each is claimed under a row lock (several workers may
run), sent, and marked sent, retried later with a doubling delay, or failed after the last
attempt. E-mail: the mail outbox sends it (notify/sender.py, the one SMTP configuration);
`sync_email` brings each e-mail notice up to date with its message (sent, retried, failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
import asyncpg
from prometheus_client import CollectorRegistry

from notify import webhook
from notify.delivery_result import Result
from notify.mail_metrics import MailMetrics
from notify.notices import Notice, from_row
from notify.sender import deliver_due as send_outbox
from notify.settings import NotifySettings

# e-mail notices whose outbox message moved on since the last look: sent, given up on, or
# tried again (attempts changed)
_SYNC = (
    "update notices n set"
    " status = case when o.sent_at is not null then 'sent'"
    "   when o.failed_at is not null then 'failed' else 'pending' end,"
    " attempts = o.attempts, last_error = o.last_error,"
    " next_attempt_at = o.next_attempt_at, sent_at = o.sent_at"
    " from mail_outbox o where o.key = 'notice/' || n.id::text"
    " and n.channel = 'email' and n.status = 'pending'"
    " and (o.sent_at is not null or o.failed_at is not null or o.attempts <> n.attempts)"
    " returning n.status"
)


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
            "select * from notices where status = 'pending' and channel <> 'email'"
            " and next_attempt_at <= $1 order by next_attempt_at, id limit 1"
            " for update skip locked",
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


async def sync_email(pool: asyncpg.Pool) -> Delivered:
    """E-mail notices brought up to date with their outbox messages; how many were sent,
    retried and failed since the last look."""
    done = Delivered()
    for row in await pool.fetch(_SYNC):
        if row["status"] == "sent":
            done.sent += 1
        elif row["status"] == "failed":
            done.failed += 1
        else:
            done.retried += 1
    return done


async def deliver_due(
    pool: asyncpg.Pool,
    settings: NotifySettings,
    now: datetime,
    session: aiohttp.ClientSession | None = None,
) -> Delivered:
    """Send the outbox's due e-mail (when SMTP is configured), bring e-mail notices up to
    date, and deliver up to `settings.batch` webhook notices due at `now`."""
    if settings.smtp.host:
        # another sender (`tollgate mail run`) may share the outbox: rows are locked
        metrics = MailMetrics(CollectorRegistry())  # `tollgate mail run` exports its own
        await send_outbox(pool, settings.smtp, metrics, now, settings.batch)
    done = await sync_email(pool)
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
