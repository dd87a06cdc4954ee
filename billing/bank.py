"""Booking bank credits: match each to an account, book it exactly once, keep the rest for
an operator.

A credit is matched, in this order, by the virtual account number it was paid to, by a
document number in its title (INV/..., PF/..., the number printed on every document), or by
the account's payment reference `TG-<account>` in its title. It is stored keyed by the
bank's transaction id and booked through `payments.pay` with reference `bank/<id>`: a
statement imported twice, or two statements overlapping, book nothing twice; a credit left
unbooked by a crash is booked by the next import. An unmatched credit (or one in another
currency than its account) waits in the unmatched list for `assign`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing.errors import BillingError
from billing.payments import PaymentResult, pay
from billing.settings import BillingSettings
from billing.statements import BankCredit
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound
from rating.money import format_micro

# titles are cut into fixed-width pieces and glued back: a number may touch the next word
DOCUMENT_NUMBER = re.compile(r"(?<![A-Z])((?:INV|PF|CN)/\d{4}/\d{2}/\d{6})(?!\d)")
PAYMENT_REFERENCE = re.compile(r"\bTG-([A-Za-z0-9][A-Za-z0-9_.@-]*[A-Za-z0-9])", re.IGNORECASE)


def payment_reference(account: str) -> str:
    """What a customer writes in a transfer's title to pay into `account`."""
    return f"TG-{account}"


@dataclass(frozen=True, slots=True)
class Match:
    account: str
    how: str  # virtual_account | document | reference | operator


@dataclass
class ImportReport:
    source: str
    credits: int = 0
    booked: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0  # seen in an earlier import, already booked
    unmatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "credits": self.credits,
            "booked": self.booked,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
        }


async def match(conn: Conn, credit: BankCredit) -> Match | None:
    if credit.virtual_iban:
        account = await conn.fetchval(
            "select account from virtual_accounts where iban = $1",
            credit.virtual_iban.replace(" ", "").upper(),
        )
        if account is not None:
            return Match(account, "virtual_account")
    titles = " ".join((credit.title, credit.title_pieces))
    for number in DOCUMENT_NUMBER.findall(titles.upper()):
        account = await conn.fetchval(
            "select account from billing_documents where number = $1", number
        )
        if account is not None:
            return Match(account, "document")
    for ref in PAYMENT_REFERENCE.findall(titles):
        account = await conn.fetchval("select id from accounts where lower(id) = lower($1)", ref)
        if account is not None:
            return Match(account, "reference")
    return None


async def import_credits(
    store: AccountStore,
    credits: list[BankCredit],
    source: str,
    settings: BillingSettings,
    now: datetime,
) -> ImportReport:
    report = ImportReport(source, credits=len(credits))
    for credit in credits:
        async with store.pool.acquire() as conn:
            row = await _stored(conn, credit, source, now)
            if row["booked_at"] is not None:
                report.duplicates += 1
                continue
            found = (
                Match(row["account"], row["matched_by"])
                if row["account"] is not None
                else await match(conn, credit)
            )
            if found is not None:
                currency = await conn.fetchval(
                    "select currency from accounts where id = $1", found.account
                )
                if currency != credit.currency:
                    found = None  # paying another currency needs an operator's decision
        if found is None:
            report.unmatched.append(credit.bank_ref)
            continue
        result = await _book(store, row["id"], credit, found, settings, now)
        report.booked.append(
            {
                "bank_ref": credit.bank_ref,
                "account": found.account,
                "matched_by": found.how,
                "amount": format_micro(credit.amount, 2),
                "invoice": None if result.invoice is None else result.invoice.number,
            }
        )
    return report


async def _stored(conn: Conn, credit: BankCredit, source: str, now: datetime) -> Any:
    """The credit's row, inserted on first sight (the bank's id is unique)."""
    await conn.execute(
        "insert into bank_transactions (bank_ref, source, booked_on, amount, currency, title,"
        " counterparty, counter_iban, virtual_iban, imported_at)"
        " values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) on conflict (bank_ref) do nothing",
        credit.bank_ref,
        source,
        credit.booked_on,
        credit.amount,
        credit.currency,
        credit.title,
        credit.counterparty,
        credit.counter_iban,
        credit.virtual_iban,
        now,
    )
    return await conn.fetchrow(
        "select * from bank_transactions where bank_ref = $1", credit.bank_ref
    )


async def _book(
    store: AccountStore,
    row_id: int,
    credit: BankCredit,
    found: Match,
    settings: BillingSettings,
    now: datetime,
) -> PaymentResult:
    """The ledger entry first (idempotent on its reference), then the row says booked: a
    crash in between leaves the row unbooked and the next import books the same entry."""
    async with store.pool.acquire() as conn:
        await conn.execute(
            "update bank_transactions set account = $2, matched_by = $3"
            " where id = $1 and booked_at is null",
            row_id,
            found.account,
            found.how,
        )
    note = f"bank transfer {credit.booked_on}: {credit.title}"[:200]
    result = await pay(
        store, found.account, credit.amount, f"bank/{credit.bank_ref}", settings, now, note
    )
    async with store.pool.acquire() as conn:
        await conn.execute(
            "update bank_transactions set booked_at = $2 where id = $1 and booked_at is null",
            row_id,
            now,
        )
    return result


async def unmatched(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select * from bank_transactions where booked_at is null order by booked_on, id"
    )
    return [
        {
            "bank_ref": r["bank_ref"],
            "source": r["source"],
            "booked_on": r["booked_on"].isoformat(),
            "amount": format_micro(r["amount"], 2),
            "currency": r["currency"],
            "title": r["title"],
            "counterparty": r["counterparty"],
            "counter_iban": r["counter_iban"],
        }
        for r in rows
    ]


async def assign(
    store: AccountStore,
    bank_ref: str,
    account: str,
    by: str,
    settings: BillingSettings,
    now: datetime,
) -> PaymentResult:
    """An operator's decision: book an unmatched credit to `account`."""
    if not by:
        raise BillingError("--by", "required: who assigned the payment")
    try:
        target = await store.get(account)
    except AccountNotFound:
        raise BillingError("account", f"unknown account {account!r}") from None
    async with store.pool.acquire() as conn:
        row = await conn.fetchrow("select * from bank_transactions where bank_ref = $1", bank_ref)
        if row is None:
            raise BillingError("bank_ref", f"no bank transaction {bank_ref!r}")
        if row["booked_at"] is not None and row["account"] != account:
            raise BillingError("bank_ref", f"{bank_ref} is already booked to {row['account']}")
        if row["currency"] != target.currency:
            raise BillingError(
                "account", f"{account} is in {target.currency}, the payment in {row['currency']}"
            )
        await conn.execute(
            "update bank_transactions set assigned_by = $2 where id = $1 and booked_at is null",
            row["id"],
            by,
        )
    credit = BankCredit(
        row["bank_ref"], row["booked_on"], row["amount"], row["currency"], row["title"]
    )
    return await _book(store, row["id"], credit, Match(account, "operator"), settings, now)
