"""Minute bundles as the ledger scripts see them.

The account's hash holds its assignments' allowances in one field, `bundles`: entries
`ID|SECONDS|CLASSES|PREFIXES|FROM_MS|TO_MS|FIRST_PERIOD|FIRST_SECONDS` joined by ';'
(ID = `assignment.allowance`, lists comma-separated, TO_MS '' while open). Usage lives in
the same hash, per period: `bu:ID:YYYY-MM` (seconds consumed) and `br:ID:YYYY-MM` (seconds
reserved by open calls), so a call's grant and its bundle move in one script.

Periods are calendar months in the account's time zone; the instant is always an input.
A plan started during a month gets, for that month, its allowance and fee pro-rata by
days: amount * days_left // days_in_month, where the start's own day counts in full and
the division rounds down (in the customer's favour for the fee; the allowance the same
way, so both follow one rule)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from rating.plans import Assignment, Plan


def period_of(at: datetime, timezone: str) -> str:
    """The month (YYYY-MM) an instant falls in, in `timezone`."""
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def days_left(at: datetime, timezone: str) -> tuple[int, int]:
    """(days from `at`'s local day to the month's end, both included; days in the month)."""
    local: date = at.astimezone(ZoneInfo(timezone)).date()
    total = calendar.monthrange(local.year, local.month)[1]
    return total - local.day + 1, total


def pro_rata(amount: int, at: datetime, timezone: str) -> int:
    """`amount` for the part of the month that starts on `at`'s local day (rounded down)."""
    left, total = days_left(at, timezone)
    return amount * left // total


def _ms(at: datetime | None) -> str:
    return "" if at is None else str(int(at.timestamp() * 1000))


def encode(items: Iterable[tuple[Assignment, Plan]], timezone: str) -> str:
    """The `bundles` field for an account's assignments (with their plans)."""
    out = []
    for a, plan in items:
        first = period_of(a.start_at, timezone)
        left, total = days_left(a.start_at, timezone)
        for i, allowance in enumerate(plan.allowances):
            # a plan started on the 1st has its whole allowance in its first month
            first_secs = "" if left == total else str(allowance.seconds * left // total)
            out.append(
                "|".join(
                    (
                        f"{a.id}.{i}",
                        str(allowance.seconds),
                        ",".join(allowance.classes),
                        ",".join(allowance.prefixes),
                        _ms(a.start_at),
                        _ms(a.end_at),
                        first,
                        first_secs,
                    )
                )
            )
    return ";".join(out)


def usage_fields(assignment: int, allowance: int, period: str) -> tuple[str, str]:
    """The hash fields of a bundle's consumed and reserved seconds in `period`."""
    key = f"{assignment}.{allowance}:{period}"
    return f"bu:{key}", f"br:{key}"
