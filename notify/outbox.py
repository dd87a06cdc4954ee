"""The outbox: a message is written once per key and sent later by the sender."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.pg import Conn


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    media_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True, slots=True)
class Mail:
    key: str  # what it is for; a second message with the same key is not written
    recipient: str
    subject: str
    body: str
    attachment: Attachment | None = None
    language: str = ""  # Content-Language, when known


async def enqueue(conn: Conn, mail: Mail, now: datetime) -> bool:
    """Write `mail` to the outbox, due at once; False when its key was written before."""
    a = mail.attachment
    inserted = await conn.fetchval(
        "insert into mail_outbox (key, recipient, subject, body, attachment_name,"
        " attachment_type, attachment, created_at, next_attempt_at, language)"
        " values ($1,$2,$3,$4,$5,$6,$7,$8,$8,$9) on conflict (key) do nothing returning id",
        mail.key,
        mail.recipient,
        mail.subject,
        mail.body,
        None if a is None else a.name,
        None if a is None else a.media_type,
        None if a is None else a.data,
        now,
        mail.language,
    )
    return inserted is not None


async def pending(conn: Conn) -> int:
    return int(
        await conn.fetchval(
            "select count(*) from mail_outbox where sent_at is null and failed_at is null"
        )
    )
