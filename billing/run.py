"""`bill run`: one pass over every account for a period, safe to repeat.

For each account: first Redis is brought in step with PostgreSQL if it drifted (repair.py),
then the period's subscription fees (once the period is over in the account's zone), then
prepaid: invoices for new top-ups, pro-formas due (proforma.py) and the negative-balance
lifecycle; postpaid: the period's invoice and the overdue flag. Everything is keyed (fee
references, document sources, lifecycle events), so a second run with the same arguments
issues nothing new.

Accounts are read in batches (`BATCH`, in id order) and each batch is billed as set
operations (batch.py): a constant number of statements and Redis pipelines per batch,
whatever its size. An account that drifted from PostgreSQL is repaired and billed alone
(`bill_account`, the same steps one account at a time), and so is every account of a batch
whose set operation failed: a failure stays with its account, the run bills every other
account and reports the failures, which the CLI turns into a non-zero exit. Several runs may
work side by side, each on its `shard` of the accounts (by a hash of the id).

A repeat leaves alone the accounts the last complete run left with nothing to do and that
nothing changed for since (marks.py): for those it reads one brief row and two Redis fields;
pages where few accounts are left to bill are gathered into one batch."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import RedisError

from billing.batch import ACCOUNT_ERRORS, Batch
from billing.fees import charge_fees
from billing.marks import (
    RUN_FLAG,
    Brief,
    Waiting,
    accounts_of,
    page_with_marks,
    settings_digest,
    time_dues,
    write_marks,
)
from billing.period import Period
from billing.plan_fees import charge_plan_fees
from billing.postpaid import issue_period_invoice, refresh_overdue
from billing.prepaid import invoice_topups, lifecycle
from billing.proforma import issue_proformas
from billing.quiet import money_of
from billing.report import RunReport
from billing.rounding import book_rounding
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import Account, AccountKind, AccountStatus
from rating.repair import DRIFT_MONEY, drift_in, repair_account

__all__ = ["BATCH", "RunReport", "bill_account", "bill_run"]

log = logging.getLogger("tollgate.billing")

BATCH = 1000  # accounts per batch


async def bill_run(
    store: AccountStore,
    period: Period,
    settings: BillingSettings,
    now: datetime,
    *,
    shard: tuple[int, int] | None = None,
    batch: int = BATCH,
) -> RunReport:
    """Bill every account (of `shard`: (index, count)) for `period` as of `now`."""
    report = RunReport(period, now)
    digest = settings_digest(settings)

    async def read(after: str) -> _Page:
        """A page of accounts with its drift read: the next one is read while a batch is
        billed (its Redis and PostgreSQL waits overlap the batch's)."""
        briefs = await page_with_marks(store.pool, after, batch, shard, period, digest, now)
        if not briefs:
            return _Page(briefs, [], {})
        quiet = await _still_quiet(store, briefs)
        todo = await accounts_of(store.pool, [b.id for b in briefs if b.id not in quiet])
        return _Page(briefs, todo, await _in_step(store, todo, report) if todo else {})

    ahead: asyncio.Task[_Page] = asyncio.create_task(read(""))
    try:
        async with store.pool.acquire() as conn:
            await conn.execute("select set_config($1, 'on', false)", RUN_FLAG)
            try:
                # pages whose accounts are mostly left alone are billed together: a batch's
                # statements cost the same for ten accounts as for a thousand
                held = _Page([], [], {})
                while (got := await ahead).briefs:
                    ahead = asyncio.create_task(read(got.briefs[-1].id))
                    _left_alone(got, report)
                    held = held.joined(got)
                    if len(held.todo) >= batch:
                        await _bill_page(store, conn, held, report, settings, digest)
                        held = _Page([], [], {})
                if held.todo:
                    await _bill_page(store, conn, held, report, settings, digest)
            finally:
                await conn.execute("select set_config($1, '', false)", RUN_FLAG)
    finally:
        ahead.cancel()
    return report


@dataclass(frozen=True, slots=True)
class _Page:
    briefs: list[Brief]  # the page, in id order
    todo: list[tuple[Account, int]]  # the accounts to bill, in id order
    balances: dict[str, int]  # those of `todo` in step with PostgreSQL: their Redis balance

    def joined(self, later: _Page) -> _Page:
        """`later` added to the accounts to bill (of its page, only those are kept)."""
        todo = {a.id for a, _ in later.todo}
        return _Page(
            [*self.briefs, *(b for b in later.briefs if b.id in todo)],
            [*self.todo, *later.todo],
            {**self.balances, **later.balances},
        )


def _left_alone(page: _Page, report: RunReport) -> None:
    """The accounts a clean mark lets the run skip: only counted (and reported as the batch
    would where their period still runs)."""
    todo = {a.id for a, _ in page.todo}
    for b in page.briefs:
        if b.id not in todo:
            report.skipped += 1
            if report.now < report.period.bounds(b.timezone)[1]:
                report.not_over.append(b.id)


async def _still_quiet(store: AccountStore, page: list[Brief]) -> set[str]:
    """The accounts of `page` marked clean that can stay so: their ledger in Redis as
    PostgreSQL has it and, if prepaid, their balance not below zero (calls, which no mark
    watches, reach billing only through it). Two fields each, one read per page (quiet.py)."""
    clean = [b for b in page if b.mark is not None and b.mark.clean]
    if not clean:
        return set()
    try:
        keys = store.ledger.keys
        values = await money_of(store.ledger.redis, [keys.account(b.id) for b in clean])
    except RedisError as exc:  # the full read finds which account Redis refuses
        log.warning("bill run: quick ledger read failed (%s); reading in full", exc)
        return set()
    quiet = set()
    for b, v in zip(clean, values, strict=True):
        if isinstance(v, Exception) or v[0] is None or int(v[1] or 0) != b.seq:
            continue  # the full read sees it again (and reports or repairs it)
        if b.kind is AccountKind.PREPAID and int(v[0]) < 0:
            continue
        quiet.add(b.id)
    return quiet


async def _bill_page(
    store: AccountStore,
    conn: Conn,
    page: _Page,
    report: RunReport,
    settings: BillingSettings,
    digest: str,
) -> None:
    balances = page.balances
    fast = [a for a, _ in page.todo if a.id in balances]
    alone = [a for a, _ in page.todo if a.id not in report.failed and a.id not in balances]
    waiting = Waiting(report.now)
    waiting.pending.update(a.id for a in alone)  # billed one by one: not marked clean
    for account in alone:  # repaired (or beyond repair): one by one
        await _isolated(store, conn, account, report, settings, repair=True)
    try:
        await Batch(store, conn, fast, settings, report, balances, waiting).run()
    except ACCOUNT_ERRORS as exc:
        first = page.todo[0][0].id
        log.warning("bill run: batch of %s.. failed (%s); account by account", first, exc)
        waiting.pending.update(a.id for a in fast)
        for account in fast:
            if account.id not in report.failed:
                await _isolated(store, conn, account, report, settings)
    ids = [a.id for a, _ in page.todo]
    waiting.pending.update(a for a in ids if a in report.failed)
    zones = {a.id: a.timezone for a, _ in page.todo}
    await time_dues(conn, [a for a in ids if a not in waiting.pending], report.period, zones,
                    waiting)  # fmt: skip
    marks = {b.id: b.mark for b in page.briefs}
    await write_marks(conn, {a: marks.get(a) for a in ids}, waiting, report.period, digest)


async def _in_step(
    store: AccountStore, page: list[tuple[Account, int]], report: RunReport
) -> dict[str, int]:
    """The accounts of `page` Redis holds as PostgreSQL does, with their balances (one
    pipeline); an account whose key Redis refuses to read is failed."""
    redis, keys = store.ledger.redis, store.ledger.keys
    wanted = [account.redis_fields() for account, _ in page]  # once per account: CPU
    async with redis.pipeline(transaction=False) as pipe:
        for (account, _), fields in zip(page, wanted, strict=True):
            pipe.hmget(keys.account(account.id), [*DRIFT_MONEY, *fields])
        values = await pipe.execute(raise_on_error=False)
    fast = {}
    for (account, seq), v, fields in zip(page, values, wanted, strict=True):
        if isinstance(v, Exception):
            log.error("bill run: account %s failed: %s", account.id, v)
            report.failed[account.id] = f"{type(v).__name__}: {v}"
        elif drift_in(v, account, seq, fields) is None:
            fast[account.id] = int(v[0])  # drift_fields starts with the balance
    return fast


async def _isolated(
    store: AccountStore,
    conn: Conn,
    account: Account,
    report: RunReport,
    settings: BillingSettings,
    *,
    repair: bool = False,
) -> None:
    try:
        if repair:
            seq = int(
                await conn.fetchval("select ledger_seq from accounts where id = $1", account.id)
            )
            fixed = await repair_account(store, account, seq)
            if fixed is not None:
                report.repaired.append(fixed)
        await bill_account(store, conn, account, report, settings)
    except (*ACCOUNT_ERRORS, RedisError) as exc:
        log.error("bill run: account %s failed: %s", account.id, exc)
        report.failed[account.id] = f"{type(exc).__name__}: {exc}"


async def bill_account(
    store: AccountStore, conn: Conn, account: Account, report: RunReport, settings: BillingSettings
) -> None:
    """Bill one account, step by step (what a batch does for many at once)."""
    period, now = report.period, report.now
    over = now >= period.bounds(account.timezone)[1]
    if not over:
        report.not_over.append(account.id)
    elif account.status is not AccountStatus.CLOSED:
        report.fees += [
            e for e, created in await charge_fees(store, conn, account, period, now) if created
        ]
        report.fees += await charge_plan_fees(store, conn, account.id, period, now)
    if account.kind is AccountKind.PREPAID:
        for doc in await invoice_topups(conn, account, settings, now):
            report.documents.append(doc)
            await book_rounding(store, doc, now)
        report.documents += await issue_proformas(conn, account, settings, now)
        report.lifecycle += await lifecycle(store, conn, await store.get(account.id), settings, now)
        return
    if over:
        issued = await issue_period_invoice(conn, account, period, settings, now)
        if issued is not None:
            if issued[1]:
                report.documents.append(issued[0])
            await book_rounding(store, issued[0], now)  # again after a crash: idempotent
    changed = await refresh_overdue(store, conn, await store.get(account.id), settings, now)
    if changed is True:
        report.overdue_set.append(account.id)
    elif changed is False:
        report.overdue_cleared.append(account.id)
