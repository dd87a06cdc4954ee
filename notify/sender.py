"""Sending the outbox through SMTP (aiosmtplib), one message at a time, with backoff.

A message is locked while it is sent (FOR UPDATE SKIP LOCKED), so two senders never send
one message twice; a failure is written back with the next attempt's time (backoff_s,
doubling, at most an hour) and, after max_attempts (at once for a refused recipient), the
message is marked failed. Nothing here is awaited by billing: billing only writes the
outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib
import asyncpg

from notify.mail_metrics import MailMetrics
from notify.mail_settings import SmtpSettings
from notify.outbox import pending

log = logging.getLogger("tollgate.notify")
MAX_BACKOFF_S = 3600.0


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)  # keys
    retry: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retry": self.retry,
            "failed": self.failed,
            "pending": self.pending,
        }


def message(row: Any, settings: SmtpSettings, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = row["recipient"]
    msg["Subject"] = row["subject"]
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    msg["X-Tollgate-Key"] = row["key"]
    msg.set_content(row["body"])
    if row["language"]:
        msg["Content-Language"] = row["language"]  # after set_content, which clears Content-*
    if row["attachment"] is not None:
        main, _, sub = str(row["attachment_type"]).partition("/")
        msg.add_attachment(
            bytes(row["attachment"]), maintype=main, subtype=sub, filename=row["attachment_name"]
        )
    return msg


async def send(msg: EmailMessage, settings: SmtpSettings) -> None:
    await aiosmtplib.send(
        msg,
        hostname=settings.host,
        port=settings.port,
        username=settings.user or None,
        password=settings.password or None,
        start_tls=settings.starttls,
        use_tls=settings.tls,
        timeout=settings.timeout_s,
    )


def backoff(settings: SmtpSettings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.backoff_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


async def deliver_due(
    pool: asyncpg.Pool,
    settings: SmtpSettings,
    metrics: MailMetrics,
    now: datetime,
    limit: int = 100,
) -> DeliveryReport:
    """One pass: send what is due at `now` (at most `limit` messages)."""
    report = DeliveryReport()
    if not settings.host:
        log.info("TOLLGATE_SMTP_HOST is not set: e-mail waits in the outbox")
    for _ in range(limit if settings.host else 0):
        if not await _deliver_one(pool, settings, metrics, now, report):
            break
    async with pool.acquire() as conn:
        report.pending = await pending(conn)
    metrics.pending.set(report.pending)
    return report


async def _deliver_one(
    pool: asyncpg.Pool,
    settings: SmtpSettings,
    metrics: MailMetrics,
    now: datetime,
    report: DeliveryReport,
) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select * from mail_outbox where sent_at is null and failed_at is null"
            " and next_attempt_at <= $1 order by next_attempt_at, id limit 1"
            " for update skip locked",
            now,
        )
        if row is None:
            return False
        msg = message(row, settings, now)
        attempts = row["attempts"] + 1
        try:
            await send(msg, settings)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # a refused recipient will be refused again: given up at once
            refused = isinstance(exc, aiosmtplib.SMTPRecipientsRefused)
            gave_up = refused or attempts >= settings.max_attempts
            log.warning(
                "mail %s to %s: attempt %d failed: %r", row["key"], row["recipient"], attempts, exc
            )
            await conn.execute(
                "update mail_outbox set attempts = $2, last_error = $3,"
                " next_attempt_at = $4, failed_at = $5 where id = $1",
                row["id"],
                attempts,
                str(exc)[:500],
                now + backoff(settings, attempts),
                now if gave_up else None,
            )
            outcome = "failed" if gave_up else "retry"
            (report.failed if gave_up else report.retry).append(row["key"])
        else:
            await conn.execute(
                "update mail_outbox set attempts = $2, sent_at = $3, message_id = $4,"
                " last_error = '' where id = $1",
                row["id"],
                attempts,
                now,
                msg["Message-ID"],
            )
            outcome = "sent"
            report.sent.append(row["key"])
    metrics.delivered.labels(outcome).inc()
    return True
