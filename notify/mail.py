"""The e-mail channel: plain-text mail through the operator's SMTP server (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from notify.delivery_result import Result
from notify.notices import Notice
from notify.settings import NotifySettings


def message(settings: NotifySettings, notice: Notice) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = notice.recipient
    msg["Subject"] = notice.subject
    msg["Date"] = format_datetime(notice.created_at)
    msg["Message-ID"] = make_msgid(f"notice{notice.id}")
    msg.set_content(notice.body)
    msg["Content-Language"] = notice.language  # after set_content, which clears Content-*
    return msg


async def send(settings: NotifySettings, notice: Notice) -> Result:
    if not settings.smtp_host:
        return Result.later("TOLLGATE_NOTIFY_SMTP_HOST is not set")
    try:
        errors, _ = await aiosmtplib.send(
            message(settings, notice),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user or None,
            password=settings.smtp_password or None,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=settings.smtp_timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return Result.fail(f"recipient refused: {exc}"[:500])
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Result.later(f"{type(exc).__name__}: {exc}"[:500])
    if errors:
        return Result.fail(f"recipient refused: {errors}"[:500])
    return Result.ok()
