"""What the customer is told about abuse findings (through notify/): the warning with its
deadline, and the suspension. Both are notices the customer must receive (no opt-out), once
per finding."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from abuse.findings import Finding
from core.pg import Conn
from notify import contacts
from notify.notices import enqueue
from notify.settings import NotifySettings
from rating.accounts import Account

# rule -> (pl, en), as the customer reads it
RULES: dict[str, tuple[str, str]] = {
    "autodialing": ("automatyczne wybieranie numerów", "automatic dialling"),
    "broadcasting": (
        "masowe rozsyłanie faksów lub poczty głosowej",
        "fax or voicemail broadcasting",
    ),
    "forwarding": ("nadmierne przekierowywanie połączeń", "excessive call forwarding"),
    "premium": ("połączenia z numerami o podwyższonej opłacie", "calls to premium-rate numbers"),
    "revenue_share": (
        "ruch do numerów generujących przychód (IRSF)",
        "traffic to revenue-share numbers (IRSF)",
    ),
    "wangiri": ("połączenia typu Wangiri", "a Wangiri call pattern"),
}

REASONS: dict[str, tuple[str, str]] = {
    "critical": (
        "Zawieszenie na czas wyjaśnienia naruszenia.",
        "Suspended while the violation is investigated.",
    ),
    "deadline": (
        "Naruszenie trwało po terminie podanym w wezwaniu.",
        "The violation went on after the deadline given in the warning.",
    ),
}


def local_time(at: datetime, timezone: str) -> str:
    """'2026-12-05 14:30 Europe/Warsaw': the instant in the customer's zone."""
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} {timezone}"


def _base(account: Account, f: Finding) -> dict[str, object]:
    pl, en = RULES.get(f.rule, (f.rule, f.rule))
    return {"account": account.id, "finding": f.id, "rule": f.rule, "rule_pl": pl, "rule_en": en}


async def warning(
    conn: Conn,
    settings: NotifySettings,
    account: Account,
    f: Finding,
    deadline: datetime,
    now: datetime,
) -> list[int]:
    data = {
        **_base(account, f),
        "deadline": local_time(deadline, account.timezone),
        "deadline_at": deadline.isoformat(),
    }
    contact = await contacts.get(conn, account.id)
    return await enqueue(conn, settings, contact, "abuse_warning", data, str(f.id), now)


async def suspension(
    conn: Conn, settings: NotifySettings, account: Account, f: Finding, why: str, now: datetime
) -> list[int]:
    pl, en = REASONS[why]
    data = {**_base(account, f), "reason_pl": pl, "reason_en": en, "why": why}
    contact = await contacts.get(conn, account.id)
    return await enqueue(conn, settings, contact, "abuse_suspended", data, str(f.id), now)
