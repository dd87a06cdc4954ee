"""The bill run over one batch of accounts, as set operations.

The same steps as billing an account alone (run.bill_account), each done for the whole batch
in a constant number of statements: the period's fees (bulk_entries), top-up invoices,
pro-formas and postpaid invoices (bulk_issue) and their rounding entries, then the prepaid
lifecycle and the postpaid overdue flag, which read the batch at once and act one account at
a time only where something changes (a stretch of negative balance, a block to set or lift).
A failure in an account's own action stays with that account."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from billing import batch_reads as reads
from billing.bulk_entries import Booked, EntryDraft, book_entries
from billing.bulk_issue import issue_many
from billing.documents import Document, Draft, Kind, Line
from billing.fees import fee_reference
from billing.labels import CALLS, line_text
from billing.marks import Waiting
from billing.negative import after_now, keep_marks, marks_of, since_of_many
from billing.period import Period, add_months
from billing.plan_fees import plan_fee_drafts
from billing.postpaid import allocate, invoice_source, is_overdue, today_of
from billing.prepaid import (
    CLOSED,
    FOREIGN,
    act_on_balance,
    restore_foreign,
    topup_line,
    topup_source,
)
from billing.proforma import due_periods, proforma_draft
from billing.report import RunReport
from billing.rounding import rounding_reference
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import Account, AccountKind, AccountStatus

log = logging.getLogger("tollgate.billing")

# an account's own action failing: the rest of the batch goes on
ACCOUNT_ERRORS = (ValueError, LookupError, RuntimeError, RedisError, OSError, asyncpg.PostgresError)


class Batch:
    """One batch of accounts billed together for `report`'s period at its instant."""

    def __init__(
        self,
        store: AccountStore,
        conn: Conn,
        accounts: Sequence[Account],
        settings: BillingSettings,
        report: RunReport,
        balances: dict[str, int],
        waiting: Waiting | None = None,
    ) -> None:
        # the Redis balances read with the batch; entries this run books are added to them
        self.balances = dict(balances)
        # what is left to do once the batch is billed (marks.py: what a repeat may skip)
        self.waiting = waiting or Waiting(report.now)
        self.store, self.conn, self.settings, self.report = store, conn, settings, report
        self.period: Period = report.period
        self.now: datetime = report.now
        self.accounts = list(accounts)

    @property
    def live(self) -> list[Account]:
        """The batch's accounts that have not failed."""
        return [a for a in self.accounts if a.id not in self.report.failed]

    def fail(self, account: str, why: str) -> None:
        log.error("bill run: account %s failed: %s", account, why)
        self.report.failed[account] = why

    async def run(self) -> None:
        over = set()
        for a in self.accounts:
            end = self.period.bounds(a.timezone)[1]
            if self.now >= end:
                over.add(a.id)
            else:
                self.report.not_over.append(a.id)
                self.waiting.at(a.id, end)
            if self.settings.proformas and a.kind is AccountKind.PREPAID:
                self.waiting.next_midnight(a.id, a.timezone)
        await self.fees(over)
        await self.documents(over)
        await self.lifecycle()
        await self.overdue()

    async def fees(self, over: set[str]) -> None:
        due = [a.id for a in self.live if a.id in over and a.status is not AccountStatus.CLOSED]
        subs = await reads.fees_due(self.conn, due, self.period) if due else []
        drafts = [
            EntryDraft(
                s.account,
                "fee",
                -s.monthly_fee,
                fee_reference(self.period, s.name),
                f"{s.name} {self.period}",
            )
            for s in subs
        ]
        # plans' fees after the subscriptions', account by account as the per-account path
        plans = await plan_fee_drafts(self.conn, due, self.period, self.now)
        drafts = sorted([*drafts, *plans], key=lambda d: d.account)
        booked = await book_entries(self.store, self.conn, drafts, self.now)
        self.report.fees += booked.entries
        self._booked(booked)

    def _booked(self, booked: Booked) -> None:
        for e in booked.entries:
            self.balances[e.account] += e.amount
        for account, why in booked.failed.items():
            self.fail(account, why)

    async def documents(self, over: set[str]) -> None:
        drafts: dict[str, list[Draft]] = {}
        prepaid = [a for a in self.live if a.kind is AccountKind.PREPAID]
        for a, d in [*await self._topup_drafts(prepaid), *await self._proforma_drafts(prepaid)]:
            drafts.setdefault(a, []).append(d)
        postpaid = [a for a in self.live if a.kind is AccountKind.POSTPAID and a.id in over]
        for a, d in await self._invoice_drafts(postpaid):
            drafts.setdefault(a, []).append(d)
        ordered = [d for a in self.accounts for d in drafts.get(a.id, [])]
        issued = await issue_many(self.conn, ordered, self.settings, self.now)
        self.report.documents += [issued[d.source][0] for d in ordered if issued[d.source][1]]
        # roundings: a new top-up invoice's; a postpaid invoice's, new or not (after a crash
        # between the document and its entry, booked now: the entry is keyed)
        rounded: list[Document] = [
            doc for doc, created in issued.values() if created and doc.kind is Kind.TOPUP_INVOICE
        ]
        invoices = [invoice_source(a.id, self.period) for a in postpaid]
        rounded += await reads.unrounded(self.conn, invoices)
        booked = await book_entries(
            self.store,
            self.conn,
            [
                EntryDraft(
                    d.account,
                    "adjustment",
                    d.rounding,
                    rounding_reference(d),
                    f"{d.number} rounded to grosze",
                )
                for d in rounded
                if d.rounding
            ],
            self.now,
        )
        self._booked(booked)

    async def _topup_drafts(self, prepaid: list[Account]) -> list[tuple[str, Draft]]:
        by_id = {a.id: a for a in prepaid}
        entries = await reads.uninvoiced_topups(self.conn, list(by_id), self.now)
        out = []
        for e in entries:
            a = by_id[e.account]
            line = topup_line(e)
            sale = today_of(e.created_at, self.settings)
            draft = Draft(
                Kind.TOPUP_INVOICE, a.id, topup_source(a.id, e.seq), a.currency, sale, (line,)
            )
            out.append((a.id, draft))
        return out

    async def _proforma_drafts(self, prepaid: list[Account]) -> list[tuple[str, Draft]]:
        if not self.settings.proformas:
            return []
        by_id = {a.id: a for a in prepaid if a.status is not AccountStatus.CLOSED}
        out = []
        for sub in await reads.subscriptions(self.conn, list(by_id)):
            a = by_id[sub.account]
            day = self.now.astimezone(ZoneInfo(a.timezone)).date()
            current = Period(day.year, day.month)
            for period in due_periods(sub, day, self.settings):
                draft = proforma_draft(a, sub, period, activation=period == current)
                out.append((a.id, draft))
        return out

    async def _invoice_drafts(self, postpaid: list[Account]) -> list[tuple[str, Draft]]:
        """The period's invoice of every postpaid account that has none yet and has
        something to invoice (postpaid.invoice_lines, for the batch)."""
        sources = {a.id: invoice_source(a.id, self.period) for a in postpaid}
        issued = await reads.documents_by_source(self.conn, list(sources.values()))
        todo = [a for a in postpaid if sources[a.id] not in issued]
        lines: dict[str, list[Line]] = {a.id: [] for a in todo}
        for c in sorted(await reads.call_lines(self.conn, todo, self.period), key=_by_prefix):
            rate = self.settings.rate_for_prefix(c.prefix)
            pl, en = line_text("calls", name=c.name, prefix=c.prefix)
            line = Line(pl, c.charge, c.calls, c.billsec, rate, unit=CALLS, text_en=en)
            lines[c.account].append(line)
        for e in await reads.entry_lines(self.conn, todo, self.period):
            pl, en = line_text(
                "fee" if e.kind == "fee" else "adjustment", what=e.note or e.reference or e.seq
            )
            lines[e.account].append(Line(pl, -e.amount, text_en=en))
        # nothing to invoice yet: a late CDR of the period may still give it an invoice
        self.waiting.pending.update(a.id for a in todo if not lines[a.id])
        return [
            (
                a.id,
                Draft(
                    Kind.INVOICE,
                    a.id,
                    sources[a.id],
                    a.currency,
                    self.period.last_day,
                    tuple(lines[a.id]),
                    period=str(self.period),
                    payment_method="transfer",
                ),
            )
            for a in todo
            if lines[a.id]
        ]

    async def lifecycle(self) -> None:
        """Prepaid: the balance at the run's instant for the whole batch; the stretch of
        negative balance read at once for those below zero, and an account acted on alone
        only when an action is due or a block is to be lifted."""
        accounts = [
            a
            for a in self.live
            if a.kind is AccountKind.PREPAID and a.status is not AccountStatus.CLOSED
        ]
        if not accounts:
            return
        ids = [a.id for a in accounts]
        after = await after_now(self.conn, ids, self.now)
        at_now = {a: self.balances[a] - after.get(a, 0) for a in ids}
        negative = {a: b for a, b in at_now.items() if b < 0}
        self.waiting.pending.update([*negative, *after])  # a stretch, or money still to come
        cleared = [a for a in accounts if at_now[a.id] >= 0]
        blocked = await reads.open_foreign_blocks(self.conn, [a.id for a in cleared])
        for a in cleared:
            if a.id in blocked:
                await self._act(a, None)
        marks = await marks_of(self.conn, ids)
        found = await since_of_many(self.conn, negative, self.now, marks) if negative else {}
        taken = await reads.lifecycle_taken(self.conn, list(found))
        for a in accounts:
            since = found.get(a.id)
            if since is not None and self._due(a, since, taken.get(a.id, {})):
                await self._act(a, since)
        await keep_marks(self.conn, found, [a.id for a in cleared if a.id in marks], self.now)

    def _due(self, account: Account, since: datetime, taken: dict[str, datetime]) -> bool:
        """Whether a lifecycle action is due for a stretch that began at `since` (what
        prepaid.act_on_balance checks again before acting)."""

        def done(kind: str) -> bool:
            last = taken.get(kind)
            return last is not None and last >= since

        foreign = since + timedelta(days=self.settings.foreign_after_days)
        closing = add_months(since, self.settings.close_after_months, account.timezone)
        # Before the removal the §5.4 warning may be due (sent once per stretch by notify).
        return (
            self.now < foreign
            or (self.now >= foreign and not done(FOREIGN))
            or (self.now >= closing and not done(CLOSED))
        )

    async def _act(self, account: Account, since: datetime | None) -> None:
        try:
            if since is None:
                done = await restore_foreign(self.store, self.conn, account, self.now)
                self.report.lifecycle += [] if done is None else [done]
            else:
                self.report.lifecycle += await act_on_balance(
                    self.store, self.conn, account, since, self.settings, self.now
                )
        except ACCOUNT_ERRORS as exc:
            self.fail(account.id, f"{type(exc).__name__}: {exc}")

    async def overdue(self) -> None:
        """Postpaid: what is owed and paid on every invoice of the batch, read at once; the
        flag written only where it changes."""
        accounts = [
            a
            for a in self.live
            if a.kind is AccountKind.POSTPAID and a.status is not AccountStatus.CLOSED
        ]
        if not accounts:
            return
        ids = [a.id for a in accounts]
        docs = await reads.owed_documents(self.conn, ids)
        paid = await reads.paid_totals(self.conn, ids)
        today = today_of(self.now, self.settings)
        days = self.settings.overdue_block_days
        for a in accounts:
            owed = allocate(docs.get(a.id, []), paid.get(a.id, 0))
            overdue = any(is_overdue(d.due_date, o - p, today, days) for d, o, p in owed)
            for d, o, p in owed:  # an unpaid invoice turns overdue on a day with no change
                if o > p and d.due_date is not None:
                    self.waiting.at(a.id, _midnight(d.due_date + timedelta(days), self.settings))
            if overdue == a.invoice_overdue:
                continue
            event = "invoice_overdue" if overdue else "invoice_overdue_cleared"
            try:
                await self.store.update(a.id, event=event, at=self.now, invoice_overdue=overdue)
            except ACCOUNT_ERRORS as exc:
                self.fail(a.id, f"{type(exc).__name__}: {exc}")
                continue
            (self.report.overdue_set if overdue else self.report.overdue_cleared).append(a.id)


def _midnight(day: date, settings: BillingSettings) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(settings.timezone))


def _by_prefix(line: reads.CallLine) -> str:
    return line.prefix
