"""Trials (the other provider's terms: a 14-day trial).

A trial gives an account a credit (a ledger adjustment referenced `trial/ACCOUNT`) and an
end date. `advance(now)` (the scheduler, every tick) takes each trial's next step, once:
- paid (a top-up or payment booked since the trial began): the trial is over; an account
  blocked for it is resumed;
- at the end, unpaid: outbound calls are blocked (the account suspended, emergency calls
  still go out) until it is paid;
- `close_after_days` after the end, still unpaid: the account is closed.
The notification worker tells the customer before each step (notify/trials.py): the end
coming, the block (with the closing date), the closing coming."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from billing.errors import BillingError
from core.env import EnvReader, SettingsError
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import AccountStatus


@dataclass(frozen=True)
class TrialSettings:
    days: int = 14
    close_after_days: int = 30  # blocked and unpaid this long after the end: closed
    # (the notices' lead time, TOLLGATE_TRIAL_NOTICE_DAYS, is the notification worker's)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise SettingsError("TOLLGATE_TRIAL_DAYS", "must be >= 1")
        if self.close_after_days < 0:
            raise SettingsError("TOLLGATE_TRIAL_CLOSE_AFTER_DAYS", "must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrialSettings:
        r = EnvReader("TOLLGATE_TRIAL_", os.environ if env is None else env)
        base = cls()
        return cls(
            days=r.get("DAYS", int, base.days),
            close_after_days=r.get("CLOSE_AFTER_DAYS", int, base.close_after_days),
        )


@dataclass(frozen=True, slots=True)
class Trial:
    account: str
    credit: int
    started_at: datetime
    ends_at: datetime
    close_at: datetime
    blocked_at: datetime | None
    closed_at: datetime | None
    paid_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "account": self.account,
            "credit": self.credit,
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "close_at": self.close_at.isoformat(),
            "blocked_at": iso(self.blocked_at),
            "closed_at": iso(self.closed_at),
            "paid_at": iso(self.paid_at),
        }


def _trial(row: asyncpg.Record) -> Trial:
    return Trial(**dict(row))


def reference(account: str) -> str:
    return f"trial/{account}"


async def start(
    store: AccountStore,
    conn: Conn,
    account: str,
    credit: int,
    settings: TrialSettings,
    now: datetime,
) -> Trial:
    """Open a trial: the credit is booked and the end date set (once per account)."""
    if credit < 0:
        raise BillingError("credit", "must not be negative")
    await store.get(account)  # AccountNotFound names it
    ends = now + timedelta(days=settings.days)
    row = await conn.fetchrow(
        "insert into trials (account, credit, started_at, ends_at, close_at)"
        " values ($1, $2, $3, $4, $5) on conflict (account) do nothing returning *",
        account,
        credit,
        now,
        ends,
        ends + timedelta(days=settings.close_after_days),
    )
    if row is None:
        raise BillingError("account", f"{account} has had a trial already")
    if credit:
        await store.add_entry(
            account, "adjustment", credit, reference(account), "trial credit", at=now
        )
    return _trial(row)


async def list_trials(conn: Conn) -> list[Trial]:
    return [_trial(r) for r in await conn.fetch("select * from trials order by started_at")]


async def _paid(conn: Conn, t: Trial) -> bool:
    found = await conn.fetchval(
        "select exists (select 1 from ledger_entries where account = $1"
        " and kind in ('topup', 'payment') and created_at >= $2)",
        t.account,
        t.started_at,
    )
    return bool(found)


async def advance(store: AccountStore, pool: asyncpg.Pool, now: datetime) -> dict[str, list[str]]:
    """Take every open trial's due step; {step: accounts}."""
    done: dict[str, list[str]] = {"paid": [], "blocked": [], "closed": []}
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select * from trials where closed_at is null and paid_at is null"
            " and (ends_at <= $1 or blocked_at is null) order by account",
            now,
        )
        for t in (_trial(r) for r in rows):
            step = await _step(store, conn, t, now)
            if step:
                done[step].append(t.account)
    return done


async def _step(store: AccountStore, conn: Conn, t: Trial, now: datetime) -> str:
    if await _paid(conn, t):
        await conn.execute("update trials set paid_at = $2 where account = $1", t.account, now)
        if t.blocked_at is not None:
            account = await store.get(t.account)
            if account.status is AccountStatus.SUSPENDED:
                await store.set_status(t.account, AccountStatus.ACTIVE, "trial paid", at=now)
        return "paid"
    if now < t.ends_at:
        return ""
    account = await store.get(t.account)
    if now >= t.close_at:
        if account.status is not AccountStatus.CLOSED:
            await store.set_status(
                t.account, AccountStatus.CLOSED, "trial ended unpaid", at=now
            )
        await conn.execute("update trials set closed_at = $2 where account = $1", t.account, now)
        return "closed"
    if t.blocked_at is None:
        if account.status is AccountStatus.ACTIVE:
            await store.set_status(
                t.account, AccountStatus.SUSPENDED, "trial ended: blocked until paid", at=now
            )
        await conn.execute("update trials set blocked_at = $2 where account = $1", t.account, now)
        return "blocked"
    return ""
