"""`bill run`: one pass over every account for a period, safe to repeat.

For each account: first Redis is brought in step with PostgreSQL if it drifted (repair.py),
then the period's subscription fees (once the period is over in the account's zone), then
prepaid: invoices for new top-ups, pro-formas due (proforma.py) and the negative-balance
lifecycle; postpaid: the period's
invoice and the overdue flag. Everything is keyed (fee references, document sources,
lifecycle events), so a second run with the same arguments issues nothing new.

Accounts are billed one by one and a failure stays with its account: the run bills every
other account and reports the failures, which the CLI turns into a non-zero exit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from billing.documents import Document
from billing.fees import charge_fees
from billing.period import Period
from billing.postpaid import issue_period_invoice, refresh_overdue
from billing.prepaid import LifecycleAction, invoice_topups, lifecycle
from billing.proforma import issue_proformas
from billing.rounding import book_rounding
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore, LedgerEntry
from rating.accounts import Account, AccountKind, AccountStatus
from rating.money import format_micro
from rating.repair import Repair, ledger_seqs, repair_account

log = logging.getLogger("tollgate.billing")


@dataclass
class RunReport:
    period: Period
    now: datetime
    fees: list[LedgerEntry] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    overdue_set: list[str] = field(default_factory=list)
    overdue_cleared: list[str] = field(default_factory=list)
    lifecycle: list[LifecycleAction] = field(default_factory=list)
    not_over: list[str] = field(default_factory=list)  # the period still runs in their zone
    repaired: list[Repair] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # account -> what went wrong

    @property
    def changed(self) -> bool:
        return bool(
            self.fees
            or self.documents
            or self.overdue_set
            or self.overdue_cleared
            or self.lifecycle
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "now": self.now.isoformat(),
            "fees": [{**e.as_dict(), "amount": format_micro(e.amount)} for e in self.fees],
            "documents": [
                {
                    "number": d.number,
                    "kind": d.kind.value,
                    "account": d.account,
                    "gross": format_micro(d.gross, 2),
                }
                for d in self.documents
            ],
            "overdue_set": self.overdue_set,
            "overdue_cleared": self.overdue_cleared,
            "lifecycle": [a.as_dict() for a in self.lifecycle],
            "period_not_over": self.not_over,
            "repaired": [r.as_dict() for r in self.repaired],
            "failed": [{"account": a, "error": e} for a, e in sorted(self.failed.items())],
        }


async def bill_run(
    store: AccountStore, period: Period, settings: BillingSettings, now: datetime
) -> RunReport:
    report = RunReport(period, now)
    seqs = await ledger_seqs(store)
    async with store.pool.acquire() as conn:
        for account in await store.all():
            try:
                fixed = await repair_account(store, account, seqs.get(account.id, 0))
                if fixed is not None:
                    report.repaired.append(fixed)
                await _bill_account(store, conn, account, report, settings)
            # domain errors (ValueError, LookupError; RuntimeError: a ledger out of
            # sequence) and an unreachable store stay with this account
            except (
                ValueError,
                LookupError,
                RuntimeError,
                RedisError,
                OSError,
                asyncpg.PostgresError,
            ) as exc:
                log.error("bill run: account %s failed: %s", account.id, exc)
                report.failed[account.id] = f"{type(exc).__name__}: {exc}"
    return report


async def _bill_account(
    store: AccountStore, conn: Conn, account: Account, report: RunReport, settings: BillingSettings
) -> None:
    period, now = report.period, report.now
    over = now >= period.bounds(account.timezone)[1]
    if not over:
        report.not_over.append(account.id)
    elif account.status is not AccountStatus.CLOSED:
        report.fees += [
            e for e, created in await charge_fees(store, conn, account, period, now) if created
        ]
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
