"""Recurring subscription fees: charged per calendar month as ledger entries of kind fee.

A month is charged once per subscription: the entry's reference 'fee/YYYY-MM/name' is
unique per account in the ledger, so a repeated run finds the first entry. A subscription
active on any day of the month is charged the whole monthly fee (no pro rata)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from billing.errors import BillingError
from billing.period import Period
from core.pg import Conn
from rating.account_store import AccountStore, LedgerEntry
from rating.accounts import Account
from rating.money import format_micro

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Subscription:
    account: str
    name: str
    monthly_fee: int  # micro-units, gross
    started_on: date
    ended_on: date | None = None

    def active_in(self, period: Period) -> bool:
        return self.started_on <= period.last_day and (
            self.ended_on is None or self.ended_on >= period.first_day
        )

    def as_dict(self) -> dict[str, str | None]:
        return {
            "account": self.account,
            "name": self.name,
            "monthly_fee": format_micro(self.monthly_fee, 2),
            "started_on": self.started_on.isoformat(),
            "ended_on": self.ended_on.isoformat() if self.ended_on else None,
        }


def fee_reference(period: Period, name: str) -> str:
    return f"fee/{period}/{name}"


async def subscribe(
    conn: Conn, account: str, name: str, monthly_fee: int, started_on: date
) -> Subscription:
    """Start (or restart, with a new fee) a subscription."""
    if not NAME.match(name):
        raise BillingError("name", "1-64 letters, digits, spaces or _ . + -")
    if monthly_fee <= 0:
        raise BillingError("monthly_fee", "must be positive")
    row = await conn.fetchrow(
        "insert into subscriptions (account, name, monthly_fee, started_on) values ($1,$2,$3,$4)"
        " on conflict (account, name) do update set monthly_fee = excluded.monthly_fee,"
        " started_on = excluded.started_on, ended_on = null returning *",
        account,
        name,
        monthly_fee,
        started_on,
    )
    assert row is not None
    return Subscription(**dict(row))


async def unsubscribe(conn: Conn, account: str, name: str, ended_on: date) -> Subscription:
    row = await conn.fetchrow(
        "update subscriptions set ended_on = $3 where account = $1 and name = $2"
        " and started_on <= $3 returning *",
        account,
        name,
        ended_on,
    )
    if row is None:
        raise BillingError("name", f"no subscription {name!r} of {account!r} started by {ended_on}")
    return Subscription(**dict(row))


async def subscriptions_of(conn: Conn, account: str) -> list[Subscription]:
    rows = await conn.fetch("select * from subscriptions where account = $1 order by name", account)
    return [Subscription(**dict(r)) for r in rows]


async def charge_fees(
    store: AccountStore, conn: Conn, account: Account, period: Period, now: datetime
) -> list[tuple[LedgerEntry, bool]]:
    """Book the period's fee of every subscription active in it, at `now` (True: booked by
    this call)."""
    out = []
    for sub in await subscriptions_of(conn, account.id):
        if sub.active_in(period):
            out.append(
                await store.add_entry(
                    account.id,
                    "fee",
                    -sub.monthly_fee,
                    fee_reference(period, sub.name),
                    f"{sub.name} {period}",
                    at=now,
                )
            )
    return out
