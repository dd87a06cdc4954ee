"""Creating notices (repeat-safe on account, kind, channel and a dedupe key) and listing them.
An e-mail notice is written to the mail outbox in the same transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.pg import Conn
from notify.contacts import Contact
from notify.kinds import kind as kind_of
from notify.outbox import Mail
from notify.outbox import enqueue as to_outbox
from notify.settings import NotifySettings
from notify.templates import check_language, render


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    account: str
    kind: str
    channel: str
    recipient: str
    language: str
    subject: str
    body: str
    data: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    sent_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "kind": self.kind,
            "channel": self.channel,
            "recipient": self.recipient,
            "language": self.language,
            "subject": self.subject,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def from_row(row: Any) -> Notice:
    data = row["data"]
    return Notice(
        row["id"],
        row["account"],
        row["kind"],
        row["channel"],
        row["recipient"],
        row["language"],
        row["subject"],
        row["body"],
        json.loads(data) if isinstance(data, str) else dict(data),
        row["status"],
        row["attempts"],
        row["next_attempt_at"],
        row["last_error"],
        row["created_at"],
        row["sent_at"],
    )


def _channels(contact: Contact) -> list[tuple[str, str]]:
    found = [("email", contact.email), ("webhook", contact.webhook_url)]
    return [(c, r) for c, r in found if r] or [("none", "")]


async def enqueue(
    conn: Conn,
    settings: NotifySettings,
    contact: Contact,
    kind: str,
    data: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    language: str | None = None,
) -> list[int]:
    """Record a notice on each of the account's channels; the ids of rows created (none when
    this (kind, dedupe_key) was recorded before). `language` is the customer's when known;
    otherwise the account's preference, then the default."""
    k = kind_of(kind)
    lang = check_language(language or contact.language or settings.language)
    subject, body = render(kind, lang, data)
    created: list[int] = []
    for channel, recipient in _channels(contact):
        status, error = "pending", ""
        if k.optional and kind in contact.opted_out:
            status = "opted_out"
        elif channel == "none":
            status, error = "failed", "the account has no e-mail address or webhook"
        new_id = await conn.fetchval(
            "insert into notices (account, kind, channel, recipient, language, subject, body,"
            " data, dedupe_key, status, next_attempt_at, last_error, created_at)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $11)"
            " on conflict (account, kind, channel, dedupe_key) do nothing returning id",
            contact.account,
            kind,
            channel,
            recipient,
            lang,
            subject,
            body,
            json.dumps(data),
            dedupe_key,
            status,
            now,
            error,
        )
        if new_id is None:
            continue
        created.append(new_id)
        if channel == "email" and status == "pending":
            # e-mail goes through the outbox (one SMTP configuration, its retries); the
            # notice follows the message's fate (delivery.sync_email)
            mail = Mail(outbox_key(new_id), recipient, subject, body, language=lang)
            await to_outbox(conn, mail, now)
    return created


def outbox_key(notice_id: int) -> str:
    return f"notice/{notice_id}"


async def list_notices(
    conn: Conn, account: str | None = None, status: str | None = None, limit: int = 100
) -> list[Notice]:
    rows = await conn.fetch(
        "select * from notices where ($1::text is null or account = $1)"
        " and ($2::text is null or status = $2) order by id desc limit $3",
        account,
        status,
        limit,
    )
    return [from_row(r) for r in rows]
