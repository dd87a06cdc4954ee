"""JSON shapes of the API. Money leaves as decimal strings ("12.3400"), never as numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rating.account_store import LedgerEntry, LiveBalance
from rating.accounts import Account
from rating.money import format_micro


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def account_view(account: Account) -> dict[str, Any]:
    out = account.as_dict()
    out["credit_limit"] = format_micro(account.credit_limit)
    out["daily_cap"] = format_micro(account.daily_cap)
    return out


def blocked(account: Account) -> str | None:
    """Why calls are refused, as a code the page words for the customer; None when they
    are not refused for the account's sake."""
    if account.status.value != "active":
        return account.status.value
    return "invoice_overdue" if account.invoice_overdue else None


def balance_view(account: Account, live: LiveBalance) -> dict[str, Any]:
    return {
        "account": account.id,
        "status": account.status.value,
        "blocked": blocked(account),
        "timezone": account.timezone,
        "kind": account.kind.value,
        "currency": account.currency,
        "balance": format_micro(live.balance),
        "reserved": format_micro(live.reserved),
        "credit_limit": format_micro(live.credit_limit),
        "available": format_micro(live.available),
        "open_calls": live.open_calls,
    }


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "amount": format_micro(entry.amount),
        "reference": entry.reference,
        "note": entry.note,
        "created_at": entry.created_at.isoformat(),
    }
