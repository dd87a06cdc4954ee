"""Postpaid: a monthly invoice (calls and fees of the month), due after `due_days`; unpaid
`overdue_block_days` past due, outbound calls are blocked (the account's invoice_overdue,
which the ledger answers with INVOICE_OVERDUE) until payments cover every such invoice.

Payments (ledger entries of kind payment or topup) settle invoices oldest first; a credit
note changes what is owed on the invoice it corrects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from billing.documents import Document, Draft, Kind, Line, documents_of, issue
from billing.labels import CALLS, line_text
from billing.listing import billed_calls
from billing.period import Period
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import Account, AccountKind, AccountStatus
from rating.money import format_micro

RERATE_REF = "rerate/"  # re-ratings reach invoices through the calls' costs, not as lines
FEE_REF = "fee/"
ROUNDING_REF = "rounding/"  # a document's own rounding is not a line of the next one


def invoice_source(account: str, period: Period) -> str:
    return f"invoice/{account}/{period}"


async def invoice_lines(
    conn: Conn, account: Account, period: Period, settings: BillingSettings
) -> list[Line]:
    start, end = period.bounds(account.timezone)
    by_prefix: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for call in await billed_calls(conn, account.id, start, end):
        if call.charge == 0:
            continue  # emergency, toll-free: nothing to invoice
        t = by_prefix.setdefault(call.cdr.prefix, [0, 0, 0])
        t[0] += 1
        t[1] += call.cdr.billsec
        t[2] += call.charge
        names[call.cdr.prefix] = call.cdr.rate_name
    lines = []
    for p, (count, seconds, cost) in sorted(by_prefix.items()):
        pl, en = line_text("calls", name=names[p], prefix=p)
        rate = settings.rate_for_prefix(p)
        lines.append(Line(pl, cost, count, seconds, rate, unit=CALLS, text_en=en))
    # the period's fees (booked after it ends) and the other charges and credits booked in it
    entries = await conn.fetch(
        "select seq, kind, amount, reference, note from ledger_entries"
        " where account = $1 and kind in ('fee', 'adjustment') and ("
        "   reference like $2"
        "   or (created_at >= $3 and created_at < $4 and coalesce(reference, '') not like $5"
        "       and coalesce(reference, '') not like $6 and coalesce(reference, '') not like $7))"
        " order by seq",
        account.id,
        f"{FEE_REF}{period}/%",
        start,
        end,
        f"{FEE_REF}%",
        f"{RERATE_REF}%",
        f"{ROUNDING_REF}%",
    )
    for e in entries:
        pl, en = line_text(
            "fee" if e["kind"] == "fee" else "adjustment",
            what=e["note"] or e["reference"] or e["seq"],
        )
        lines.append(Line(pl, -e["amount"], text_en=en))
    return lines


async def issue_period_invoice(
    conn: Conn, account: Account, period: Period, settings: BillingSettings, now: datetime
) -> tuple[Document, bool] | None:
    """The month's invoice (once); None when there is nothing to invoice."""
    lines = await invoice_lines(conn, account, period, settings)
    if not lines:
        return None
    draft = Draft(
        Kind.INVOICE,
        account.id,
        invoice_source(account.id, period),
        account.currency,
        period.last_day,
        tuple(lines),
        period=str(period),
        payment_method="transfer",
    )
    return await issue(conn, draft, settings, now)


@dataclass(frozen=True, slots=True)
class InvoiceStatus:
    document: Document
    owed: int  # its gross plus the credit notes correcting it
    paid: int

    @property
    def outstanding(self) -> int:
        return self.owed - self.paid

    def overdue(self, today: date, block_days: int) -> bool:
        return is_overdue(self.document.due_date, self.outstanding, today, block_days)

    def as_dict(self) -> dict[str, str]:
        return {
            "owed": format_micro(self.owed, 2),
            "paid": format_micro(self.paid, 2),
            "outstanding": format_micro(self.outstanding, 2),
        }


async def paid_total(conn: Conn, account: str) -> int:
    total = await conn.fetchval(
        "select coalesce(sum(amount), 0) from ledger_entries"
        " where account = $1 and kind in ('payment', 'topup')",
        account,
    )
    return int(total)


class Amounts(Protocol):
    """What allocating payments needs of a document (a Document, or a batch's row)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def gross(self) -> int: ...
    @property
    def corrects(self) -> int | None: ...
    @property
    def due_date(self) -> date | None: ...


D = TypeVar("D", bound=Amounts)


def allocate(docs: Sequence[D], paid: int) -> list[tuple[D, int, int]]:
    """(invoice, owed, paid on it) for every invoice of `docs` (one account's documents in
    the order they were issued), `paid` settling them oldest first."""
    credits: dict[int, int] = {}
    for d in docs:
        if d.kind is Kind.CREDIT_NOTE and d.corrects is not None:
            credits[d.corrects] = credits.get(d.corrects, 0) + d.gross
    remaining = paid
    out = []
    for d in docs:
        if d.kind is not Kind.INVOICE:
            continue
        owed = d.gross + credits.get(d.id, 0)
        if owed < 0:  # credited beyond the invoice: the excess pays later ones
            remaining -= owed
            owed = 0
        on_it = min(owed, remaining)
        remaining -= on_it
        out.append((d, owed, on_it))
    return out


def is_overdue(due: date | None, outstanding: int, today: date, block_days: int) -> bool:
    return outstanding > 0 and due is not None and today >= due + timedelta(block_days)


async def invoice_statuses(conn: Conn, account: str) -> list[InvoiceStatus]:
    """Every invoice of the account with what is owed and paid on it, oldest first."""
    docs = await documents_of(conn, account)
    paid = await paid_total(conn, account)
    return [InvoiceStatus(d, owed, on_it) for d, owed, on_it in allocate(docs, paid)]


def today_of(now: datetime, settings: BillingSettings) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


async def refresh_overdue(
    store: AccountStore, conn: Conn, account: Account, settings: BillingSettings, now: datetime
) -> bool | None:
    """Set or clear the account's invoice_overdue from its invoices; the new value if it
    changed, else None."""
    if account.kind is not AccountKind.POSTPAID or account.status is AccountStatus.CLOSED:
        return None
    today = today_of(now, settings)
    statuses = await invoice_statuses(conn, account.id)
    overdue = any(s.overdue(today, settings.overdue_block_days) for s in statuses)
    if overdue == account.invoice_overdue:
        return None
    event = "invoice_overdue" if overdue else "invoice_overdue_cleared"
    await store.update(account.id, event=event, at=now, invoice_overdue=overdue)
    return overdue
