"""An account's contact details and notification preferences (table notify_contacts)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.pg import Conn
from notify.errors import NotifyError
from notify.kinds import check_opt_out
from notify.templates import check_language

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


@dataclass(frozen=True, slots=True)
class Contact:
    account: str
    language: str = ""  # empty: the default setting
    email: str = ""
    webhook_url: str = ""
    thresholds: tuple[int, ...] = ()  # empty: the default setting
    opted_out: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "language": self.language,
            "email": self.email,
            "webhook_url": self.webhook_url,
            "thresholds": list(self.thresholds),
            "opted_out": list(self.opted_out),
        }


def validated(contact: Contact) -> Contact:
    if contact.language:
        check_language(contact.language)
    if contact.email and not _EMAIL.match(contact.email):
        raise NotifyError("email", f"not an e-mail address: {contact.email!r}")
    if contact.webhook_url and not contact.webhook_url.startswith(("https://", "http://")):
        raise NotifyError("webhook_url", f"an http(s) URL, not {contact.webhook_url!r}")
    return replace(
        contact,
        opted_out=tuple(check_opt_out(list(contact.opted_out))),
        thresholds=tuple(sorted(set(contact.thresholds), reverse=True)),
    )


async def get(conn: Conn, account: str) -> Contact:
    row = await conn.fetchrow("select * from notify_contacts where account = $1", account)
    if row is None:
        return Contact(account)
    return Contact(
        account,
        row["language"],
        row["email"],
        row["webhook_url"],
        tuple(row["thresholds"]),
        tuple(row["opted_out"]),
    )


async def put(conn: Conn, contact: Contact, now: datetime) -> Contact:
    """Store the account's preferences (replacing earlier ones)."""
    contact = validated(contact)
    exists = await conn.fetchval("select 1 from accounts where id = $1", contact.account)
    if exists is None:
        raise NotifyError("account", f"no account {contact.account!r}", "UNKNOWN_ACCOUNT")
    await conn.execute(
        "insert into notify_contacts"
        " (account, language, email, webhook_url, thresholds, opted_out, updated_at)"
        " values ($1, $2, $3, $4, $5, $6, $7)"
        " on conflict (account) do update set language = excluded.language,"
        " email = excluded.email, webhook_url = excluded.webhook_url,"
        " thresholds = excluded.thresholds, opted_out = excluded.opted_out,"
        " updated_at = excluded.updated_at",
        contact.account,
        contact.language,
        contact.email,
        contact.webhook_url,
        list(contact.thresholds),
        list(contact.opted_out),
        now,
    )
    return contact
