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
work side by side, each on its `shard` of the accounts (by a hash of the id)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from redis.exceptions import RedisError

from billing.batch import ACCOUNT_ERRORS, Batch
from billing.fees import charge_fees
from billing.period import Period
from billing.plan_fees import charge_plan_fees
from billing.postpaid import issue_period_invoice, refresh_overdue
from billing.prepaid import invoice_topups, lifecycle
from billing.proforma import issue_proformas
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
    Page = tuple[list[tuple[Account, int]], dict[str, int]]

    async def read(after: str) -> Page:
        """A page of accounts with its drift read: the next one is read while a batch is
        billed (its Redis and PostgreSQL waits overlap the batch's)."""
        page = await store.page(after, batch, shard)
        return page, (await _in_step(store, page, report) if page else {})

    ahead: asyncio.Task[Page] = asyncio.create_task(read(""))
    try:
        async with store.pool.acquire() as conn:
            while (got := await ahead)[0]:
                page, balances = got
                last = page[-1][0].id
                ahead = asyncio.create_task(read(last))
                await _bill_page(store, conn, page, balances, report, settings)
    finally:
        ahead.cancel()
    return report


async def _bill_page(
    store: AccountStore,
    conn: Conn,
    page: list[tuple[Account, int]],
    balances: dict[str, int],
    report: RunReport,
    settings: BillingSettings,
) -> None:
    fast = [a for a, _ in page if a.id in balances]
    alone = [a for a, _ in page if a.id not in report.failed and a.id not in balances]
    for account in alone:  # repaired (or beyond repair): one by one
        await _isolated(store, conn, account, report, settings, repair=True)
    try:
        await Batch(store, conn, fast, settings, report, balances).run()
    except ACCOUNT_ERRORS as exc:
        log.warning("bill run: batch of %s.. failed (%s); account by account", page[0][0].id, exc)
        for account in fast:
            if account.id not in report.failed:
                await _isolated(store, conn, account, report, settings)


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
