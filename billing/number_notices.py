"""The customer's notices of §5.4 (foreign numbers of a prepaid account negative for 14 days
are removed), through the notification service: a warning with the removal date as soon as
the lifecycle sees the negative stretch, and the notice that they were removed. Each is sent
once per stretch of negative balance (the stretch's start is the dedupe key)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from core.pg import Conn
from notify import contacts
from notify.kinds import NUMBERS_RELEASE_WARNING, NUMBERS_RELEASED
from notify.notices import enqueue
from notify.settings import NotifySettings
from rating.accounts import Account


async def foreign_numbers(conn: Conn, account: str) -> list[str]:
    """The account's assigned foreign numbers (what §5.4 would remove)."""
    rows = await conn.fetch(
        "select e164 from numbers where account = $1 and status = 'assigned'"
        " and type = 'foreign' order by e164",
        account,
    )
    return [r["e164"] for r in rows]


def _day(at: datetime, account: Account) -> str:
    return at.astimezone(ZoneInfo(account.timezone)).date().isoformat()


async def warn_release(
    conn: Conn,
    settings: NotifySettings,
    account: Account,
    numbers: list[str],
    since: datetime,
    release_at: datetime,
    balance: int,
    now: datetime,
) -> list[int]:
    """The warning: these numbers go on `release_at` unless the balance is positive again."""
    data = {
        "account": account.id,
        "currency": account.currency,
        "balance_micro": balance,
        "numbers": ", ".join(numbers),
        "negative_since": _day(since, account),
        "release_on": _day(release_at, account),
    }
    contact = await contacts.get(conn, account.id)
    return await enqueue(
        conn, settings, contact, NUMBERS_RELEASE_WARNING.name, data, since.isoformat(), now
    )


async def tell_released(
    conn: Conn,
    settings: NotifySettings,
    account: Account,
    numbers: list[str],
    since: datetime,
    days: int,
    now: datetime,
) -> list[int]:
    data = {
        "account": account.id,
        "numbers": ", ".join(numbers),
        "negative_since": _day(since, account),
        "days": days,
        "released_on": _day(now, account),
    }
    contact = await contacts.get(conn, account.id)
    return await enqueue(
        conn, settings, contact, NUMBERS_RELEASED.name, data, since.isoformat(), now
    )
