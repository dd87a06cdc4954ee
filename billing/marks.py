"""Which accounts a repeat bill run may leave alone (`billing_marks`, migration 0100).

A batch that billed an account to the end records that it left nothing to do for the
period, under the run's settings, as of the run's instant, until `due_at` (the first
instant at which work could appear with no change at all: the period's end in the
account's zone, a plan's start, an invoice turning overdue, a pro-forma's day). Triggers
mark the account again whenever something billing reads changes, so a later run with the
same period and settings, at an instant in [billed_at, due_at), bills it only if its Redis
balance went below zero (calls are not watched: they reach billing through the balance) or
its ledger drifted. Writes of the run itself are not changes (`RUN_FLAG` on its
connection): it has just seen them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from billing.period import Period
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import account_from_row
from rating.accounts import Account, AccountKind

RUN_FLAG = "tollgate.billing_run"  # set on the run's connection: its writes mark nothing

# gen 0: the account had no mark when read; a change since has made one, which stays
WRITE = """
insert into billing_marks as m (account, gen, period, settings, billed_at, due_at)
select account, coalesce(gen, 0), period, $4, $5, due_at
from unnest($1::text[], $2::bigint[], $3::text[], $6::timestamptz[])
    as u(account, gen, period, due_at)
on conflict (account) do update
    set period = excluded.period, settings = excluded.settings,
        billed_at = excluded.billed_at, due_at = excluded.due_at
    where excluded.period is null or m.gen = excluded.gen
"""
PAGE = """
select a.id, a.kind, a.timezone, a.ledger_seq, m.gen as mark_gen,
       coalesce(m.period = $5 and m.settings = $6 and m.billed_at <= $7
                and (m.due_at is null or m.due_at > $7), false) as mark_clean
from accounts a left join billing_marks m on m.account = a.id
where a.id > $1 and ($3::int is null or (hashtext(a.id) & 2147483647) % $3 = $4)
order by a.id limit $2
"""
# entries dated after the run's instant: the run will see them only later
FUTURE = """
select distinct account from ledger_entries where account = any($1::text[]) and created_at > $2
"""
PLAN_DUE = """
select account, min(start_at) filter (where start_at > $2) as starts
from account_plans where account = any($1::text[]) group by account
"""


@dataclass(frozen=True, slots=True)
class Mark:
    gen: int | None  # None: no mark when read
    clean: bool  # nothing to do for this run's period, settings and instant


def settings_digest(settings: BillingSettings) -> str:
    """Another configuration may bill differently: its marks do not count."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Brief:
    """What a run needs to know to leave an account alone, read with its mark in one
    statement: the mark is never newer than what it was read with. The full row of an
    account to bill is read afterwards (newer than its mark: a change in between moves the
    mark on, so the run cannot record it clean)."""

    id: str
    kind: AccountKind
    timezone: str
    seq: int  # the ledger's last entry
    mark: Mark | None


async def page_with_marks(
    pool: asyncpg.Pool,
    after: str,
    limit: int,
    shard: tuple[int, int] | None,
    period: Period,
    digest: str,
    now: datetime,
) -> list[Brief]:
    """Up to `limit` accounts (of `shard`) with ids after `after`, in id order."""
    rows = await pool.fetch(
        PAGE,
        after,
        limit,
        None if shard is None else shard[1],
        None if shard is None else shard[0],
        str(period),
        digest,
        now,
    )
    return [
        Brief(
            r["id"],
            AccountKind(r["kind"]),
            r["timezone"],
            int(r["ledger_seq"]),
            None if r["mark_gen"] is None else Mark(int(r["mark_gen"]), bool(r["mark_clean"])),
        )
        for r in rows
    ]


async def accounts_of(pool: asyncpg.Pool, ids: Sequence[str]) -> list[tuple[Account, int]]:
    """The accounts `ids` (in id order) with their ledger's last entry."""
    rows = await pool.fetch(
        "select * from accounts where id = any($1::text[]) order by id", list(ids)
    )
    return [(account_from_row(r), int(r["ledger_seq"])) for r in rows]


@dataclass
class Waiting:
    """What a batch leaves waiting: accounts with work it could not finish as of `now`
    (never marked clean) and, for the others, the first instant work falls due."""

    now: datetime
    pending: set[str] = field(default_factory=set)
    due: dict[str, datetime] = field(default_factory=dict)

    def at(self, account: str, when: datetime) -> None:
        if when > self.now and (account not in self.due or when < self.due[account]):
            self.due[account] = when

    def next_midnight(self, account: str, timezone: str) -> None:
        """Work that depends on the local date (pro-formas, overdue days)."""
        zone = ZoneInfo(timezone)
        day = self.now.astimezone(zone).date() + timedelta(days=1)
        self.at(account, datetime.combine(day, time(), zone))


async def time_dues(
    conn: Conn, accounts: Sequence[str], period: Period, timezones: dict[str, str], w: Waiting
) -> None:
    """What falls due with time that the batch does not see: an entry dated after the run
    (pending), a plan's start and, for the run's period, the next month's first instant in
    the account's zone (plan_fees books a month only once it began)."""
    if not accounts:
        return
    w.pending.update(r["account"] for r in await conn.fetch(FUTURE, list(accounts), w.now))
    for r in await conn.fetch(PLAN_DUE, list(accounts), w.now):
        if r["starts"] is not None:
            w.at(r["account"], r["starts"])
        w.at(r["account"], period.shifted(1).bounds(timezones[r["account"]])[0])


async def write_marks(
    conn: Conn,
    processed: dict[str, Mark | None],
    w: Waiting,
    period: Period,
    digest: str,
) -> None:
    """Record the outcome for every account the run billed: clean where nothing is
    pending (unless it changed meanwhile), otherwise cleared."""
    if not processed:
        return
    ids = list(processed)
    clean = [a not in w.pending for a in ids]
    await conn.execute(
        WRITE,
        ids,
        [None if (m := processed[a]) is None else m.gen for a in ids],
        [str(period) if c else None for c in clean],
        digest,
        w.now,
        [w.due.get(a) if c else None for a, c in zip(ids, clean, strict=True)],
    )
