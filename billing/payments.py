"""Payments: a ledger entry of kind payment, then what it settles, at once.

Prepaid: the payment is a top-up and gets its invoice. Postpaid: invoices are settled oldest
first and, when none is left overdue, invoice_overdue is cleared (calls go out again)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.documents import Document
from billing.errors import BillingError
from billing.postpaid import refresh_overdue
from billing.prepaid import invoice_topup, negative_since, restore_foreign
from billing.rounding import book_rounding
from billing.settings import BillingSettings
from rating.account_store import AccountStore, LedgerEntry
from rating.accounts import AccountKind
from rating.money import format_micro


@dataclass(frozen=True, slots=True)
class PaymentResult:
    entry: LedgerEntry
    created: bool  # False: this reference was paid before, nothing was added
    invoice: Document | None  # prepaid: the top-up's invoice
    invoice_overdue: bool  # the account's flag after the payment

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry": {**self.entry.as_dict(), "amount": format_micro(self.entry.amount)},
            "created": self.created,
            "invoice": None if self.invoice is None else self.invoice.number,
            "invoice_overdue": self.invoice_overdue,
        }


async def pay(
    store: AccountStore,
    account_id: str,
    amount: int,
    reference: str,
    settings: BillingSettings,
    now: datetime,
    note: str = "",
) -> PaymentResult:
    if not reference:
        raise BillingError("reference", "required: it makes a repeated payment harmless")
    entry, created = await store.add_entry(account_id, "payment", amount, reference, note, at=now)
    invoice, overdue = await money_received(store, entry, settings, now)
    return PaymentResult(entry, created, invoice, overdue)


async def money_received(
    store: AccountStore, entry: LedgerEntry, settings: BillingSettings, now: datetime
) -> tuple[Document | None, bool]:
    """What billing does at once when money comes in (a top-up or a payment, however it was
    entered): a prepaid account gets its receipt invoice and, back to >= 0, loses the
    lifecycle's foreign block; a postpaid account's overdue block is lifted when nothing is
    overdue any more. Idempotent. Returns (invoice, overdue)."""
    account = await store.get(entry.account)
    invoice = None
    async with store.pool.acquire() as conn:
        if account.kind is AccountKind.PREPAID:
            invoice, _ = await invoice_topup(conn, account, entry, settings, now)
            await book_rounding(store, invoice, now)
            if await negative_since(store, conn, account.id, now) is None:
                await restore_foreign(store, conn, account, now)
        else:
            await refresh_overdue(store, conn, account, settings, now)
    return invoice, (await store.get(entry.account)).invoice_overdue
