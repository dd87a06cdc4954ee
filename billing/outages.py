"""Outage compensation (terms §9.7-9.9).

An operator records an outage (start, end, the accounts affected or all). For each affected
account that is not closed, `compensate` credits 1/30 of the account's average monthly use
per started day of an outage that lasted longer than 24 hours (§9.7; at most 365 days,
§9.9): the use is what the account was charged for calls (CDR costs) and fees in the three
months before the day the outage began, in the account's calendar, or since the account
was opened when that is less than three months (then averaged over the time it had). An
account that used nothing (free services, §9.8) gets nothing. The credit is a ledger
adjustment referenced `outage/ID`, so compensating again books nothing; the notice is sent
by the notification worker (notify/outages.py).

An account may follow the other provider's rule instead (§10c there: a month of its
subscription per started 12 hours beyond the first day; billing/outage_rules.py): the
account's own rule, else TOLLGATE_OUTAGE_RULE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg

from billing import outage_rules
from billing.errors import BillingError
from billing.outage_rules import MONTH_PER_12H, USE_PER_DAY
from billing.period import add_months
from core.pg import Conn
from rating.account_store import AccountStore

DAY_S = 86_400
MAX_DAYS = 365  # §9.9: no compensation for the part of an outage beyond 12 months


@dataclass(frozen=True, slots=True)
class Outage:
    id: int
    started_at: datetime
    ended_at: datetime
    accounts: tuple[str, ...] | None  # None: every account
    reason: str
    recorded_by: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "accounts": list(self.accounts) if self.accounts is not None else None,
            "reason": self.reason,
            "recorded_by": self.recorded_by,
            "days": days_of(self.started_at, self.ended_at),
        }


@dataclass(frozen=True, slots=True)
class Compensation:
    account: str
    days: int
    use_total: int
    window_from: datetime
    window_to: datetime
    amount: int
    booked: bool  # this call booked it (False: it was booked before)
    rule: str = USE_PER_DAY
    months: int = 0  # month_per_12h: the months the subscription is extended by

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "rule": self.rule,
            "days": self.days,
            "months": self.months,
            "use_total": self.use_total,
            "window_from": self.window_from.isoformat(),
            "window_to": self.window_to.isoformat(),
            "amount": self.amount,
            "booked": self.booked,
        }


def days_of(started_at: datetime, ended_at: datetime) -> int:
    """Started days of an outage longer than 24 hours (§9.7), at most 365; else 0."""
    seconds = (ended_at - started_at).total_seconds()
    if seconds <= DAY_S:
        return 0
    return min(MAX_DAYS, -(-int(seconds) // DAY_S))


def amount_of(use_total: int, days: int, window_s: int, full: bool) -> int:
    """1/30 of the monthly average per day, cut to the micro-unit: over three whole months
    the average is a third of the use; over a shorter time since the account was opened,
    the use per 30 days of it."""
    if days <= 0 or use_total <= 0 or window_s <= 0:
        return 0
    if full:
        return use_total * days // 90
    return use_total * days * DAY_S // window_s


async def record(
    conn: Conn,
    started_at: datetime,
    ended_at: datetime,
    accounts: Sequence[str] | None,
    reason: str,
    by: str,
    now: datetime,
) -> Outage:
    if ended_at <= started_at:
        raise BillingError("ended_at", "must be after started_at")
    if ended_at > now:
        raise BillingError("ended_at", "an outage is recorded once it is over")
    if accounts is not None:
        known = await conn.fetch("select id from accounts where id = any($1::text[])", accounts)
        missing = sorted(set(accounts) - {r["id"] for r in known})
        if missing:
            raise BillingError("accounts", f"unknown account(s): {', '.join(missing)}")
    row = await conn.fetchrow(
        "insert into outages (started_at, ended_at, accounts, reason, recorded_by, recorded_at)"
        " values ($1, $2, $3, $4, $5, $6) returning *",
        started_at,
        ended_at,
        sorted(set(accounts)) if accounts is not None else None,
        reason,
        by,
        now,
    )
    assert row is not None
    return _outage(row)


def _outage(row: asyncpg.Record) -> Outage:
    accounts = row["accounts"]
    return Outage(
        row["id"],
        row["started_at"],
        row["ended_at"],
        tuple(accounts) if accounts is not None else None,
        row["reason"],
        row["recorded_by"],
    )


async def get(conn: Conn, outage_id: int) -> Outage:
    row = await conn.fetchrow("select * from outages where id = $1", outage_id)
    if row is None:
        raise BillingError("outage", f"no outage {outage_id}")
    return _outage(row)


async def list_outages(conn: Conn) -> list[Outage]:
    return [_outage(r) for r in await conn.fetch("select * from outages order by id desc")]


async def _use(conn: Conn, account: str, start: datetime, end: datetime) -> int:
    """Charged in [start, end): calls (CDR costs) and fees."""
    calls = await conn.fetchval(
        "select coalesce(sum(cost), 0) from cdrs where account = $1"
        " and started_at >= $2 and started_at < $3",
        account,
        start,
        end,
    )
    fees = await conn.fetchval(
        "select coalesce(sum(-amount), 0) from ledger_entries where account = $1"
        " and kind = 'fee' and created_at >= $2 and created_at < $3",
        account,
        start,
        end,
    )
    return int(calls) + int(fees)


@dataclass(frozen=True, slots=True)
class _Owed:
    amount: int
    use_total: int  # use_per_day: the use in the window; month_per_12h: the monthly fees
    window_from: datetime
    window_to: datetime
    months: int


async def _by_use(conn: Conn, row: asyncpg.Record, outage: Outage, days: int) -> _Owed:
    """§9.7: 1/30 of the average monthly use before the outage's day, per started day."""
    zone = ZoneInfo(row["timezone"])
    local = outage.started_at.astimezone(zone)
    window_to = datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)
    three = add_months(window_to, -3, row["timezone"])
    full = row["created_at"] <= three
    window_from = three if full else row["created_at"]
    use = await _use(conn, row["id"], window_from, window_to)
    window_s = int((window_to - window_from).total_seconds())
    return _Owed(amount_of(use, days, window_s, full), use, window_from, window_to, 0)


async def _by_months(conn: Conn, row: asyncpg.Record, outage: Outage) -> _Owed:
    """The other provider's §10c: the monthly fees in force on the outage's day, per month."""
    local = outage.started_at.astimezone(ZoneInfo(row["timezone"]))
    months = outage_rules.months_of(outage.started_at, outage.ended_at)
    fees = await outage_rules.monthly_fees(conn, row["id"], local.date())
    day = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo).astimezone(UTC)
    return _Owed(fees * months, fees, day, day, months)


async def compensate(
    store: AccountStore,
    conn: Conn,
    outage_id: int,
    now: datetime,
    default_rule: str = USE_PER_DAY,
) -> list[Compensation]:
    """Credit every affected account its compensation (once), by its rule (its own, else
    `default_rule`); what each was given."""
    outage_rules.check_rule(default_rule, "TOLLGATE_OUTAGE_RULE")
    outage = await get(conn, outage_id)
    days = days_of(outage.started_at, outage.ended_at)
    rows = await conn.fetch(
        "select a.id, a.timezone, a.created_at, coalesce(r.rule, $3) as rule from accounts a"
        " left join outage_rules r on r.account = a.id where a.status <> 'closed'"
        " and a.created_at < $1 and ($2::text[] is null or a.id = any($2::text[]))"
        " order by a.id",
        outage.started_at,
        list(outage.accounts) if outage.accounts is not None else None,
        default_rule,
    )
    done: list[Compensation] = []
    for row in rows if days else []:
        rule = row["rule"]
        if rule == MONTH_PER_12H:
            owed = await _by_months(conn, row, outage)
            note = f"rekompensata za przerwę w usługach ({owed.months} mies. abonamentu), §10c"
        else:
            owed = await _by_use(conn, row, outage, days)
            note = f"rekompensata za przerwę w usługach ({days} d), §9.7"
        if owed.amount <= 0:
            continue
        entry, created = await store.add_entry(
            row["id"], "adjustment", owed.amount, reference=f"outage/{outage.id}", note=note, at=now
        )
        await conn.execute(
            "insert into outage_compensations (outage_id, account, days, use_total,"
            " window_from, window_to, amount, booked_at, rule, months)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing",
            outage.id,
            row["id"],
            days,
            owed.use_total,
            owed.window_from,
            owed.window_to,
            entry.amount,
            now,
            rule,
            owed.months,
        )
        done.append(
            Compensation(
                row["id"],
                days,
                owed.use_total,
                owed.window_from,
                owed.window_to,
                entry.amount,
                created,
                rule,
                owed.months,
            )
        )
    return done
