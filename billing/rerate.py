"""Re-rating: an account's calls of one period priced again with a given deck version.

Each answered call is rated with rating.tariff.rate_call (its E.164 number, answer time and
billsec). The price moves by what the tariff moves: new charge = current charge + (new
rating - current rating), never below zero, so a cost the ledger capped at the reservation
stays forgiven and re-rating with the deck a call was rated with changes nothing.

Applying books ONE ledger adjustment for the whole difference (minus the total: a cheaper
price credits the customer), referenced 'rerate/YYYY-MM/deck:version', so applying again
adds nothing. Each call's new price is kept (rerate_calls): listings and later invoices use
it, and a later re-rating starts from it. A postpaid month already invoiced also gets a
credit note for the difference (negative when the customer is credited)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from billing.documents import Document, Draft, Kind, Line, by_source, issue
from billing.errors import BillingError
from billing.labels import line_text
from billing.listing import BilledCall, billed_calls
from billing.period import Period
from billing.postpaid import invoice_source
from billing.rounding import book_rounding
from billing.settings import BillingSettings
from core.pg import Conn
from rating.account_store import AccountStore, LedgerEntry
from rating.accounts import Account, AccountKind
from rating.deck import Deck
from rating.deck_store import DeckNotFound, effective_instants, load_deck_version
from rating.money import format_micro
from rating.tariff import NoRate, rate_call


@dataclass(frozen=True, slots=True)
class RerateLine:
    call_id: str
    started_at: datetime
    number: str
    billsec: int
    old_rated: int
    new_rated: int
    old_charge: int
    new_charge: int
    switch: str = ""  # with call_id and the account: which call this is

    @property
    def diff(self) -> int:
        return self.new_charge - self.old_charge

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": self.started_at.isoformat(),
            "number": self.number,
            "billsec": self.billsec,
            "old_cost": format_micro(self.old_charge),
            "new_cost": format_micro(self.new_charge),
            "diff": format_micro(self.diff),
        }


@dataclass(frozen=True)
class RerateResult:
    account: str
    period: Period
    deck: str
    version: int
    reference: str
    lines: list[RerateLine]
    unrated: list[dict[str, str]] = field(default_factory=list)
    applied: bool = False  # this call booked it
    already_applied: bool = False  # an earlier one did: the lines show what is left (nothing)
    entry: LedgerEntry | None = None
    credit_note: Document | None = None

    @property
    def total(self) -> int:
        return sum(line.diff for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "period": str(self.period),
            "deck": self.deck,
            "version": self.version,
            "reference": self.reference,
            "calls": len(self.lines),
            "changed": sum(1 for line in self.lines if line.diff),
            "total_diff": format_micro(self.total),
            "applied": self.applied,
            "already_applied": self.already_applied,
            "entry": None
            if self.entry is None
            else {**self.entry.as_dict(), "amount": format_micro(self.entry.amount)},
            "credit_note": None if self.credit_note is None else self.credit_note.number,
            "unrated": self.unrated,
            "lines": [line.as_dict() for line in self.lines],
        }


def rerate_reference(period: Period, deck: str, version: int | Sequence[int]) -> str:
    """'rerate/2026-11/retail:2', or ':1+2' for calls priced by the versions in force at
    their starts (one version in force for all is the same as naming it)."""
    versions = [version] if isinstance(version, int) else sorted(set(version))
    return f"rerate/{period}/{deck}:{'+'.join(str(v) for v in versions)}"


def _in_force(instants: dict[int, datetime], at: datetime) -> int | None:
    """The highest version whose effective instant has come by `at`."""
    found = [v for v, effective in instants.items() if effective <= at]
    return max(found) if found else None


def _line(deck: Deck, call: BilledCall) -> RerateLine:
    c = call.cdr
    answered_at = c.answered_at or c.ended_at - timedelta(seconds=c.billsec)
    new = rate_call(deck, c.e164.lstrip("+"), answered_at, c.billsec, answered=True).cost
    charge = max(0, call.charge + new - call.rated)
    return RerateLine(
        c.call_id, c.started_at, c.e164, c.billsec, call.rated, new, call.charge, charge, c.switch
    )


async def rerate(
    store: AccountStore,
    account_id: str,
    period: Period,
    deck_name: str,
    version: int | None = None,
    *,
    now: datetime,
    apply: bool = False,
    settings: BillingSettings | None = None,
) -> RerateResult:
    """Price the period's answered calls with deck `deck_name`: `version`, or (None) each
    call with the version in force at its start (terms §7.1: a price change applies to calls
    that start after it); with apply=True book the difference (once), as of `now`."""
    account = await store.get(account_id)
    async with store.pool.acquire() as conn:
        start, end = period.bounds(account.timezone)
        calls = [
            c
            for c in await billed_calls(conn, account.id, start, end)
            # free by law, or nothing a deck could price
            if not (c.cdr.emergency or not c.cdr.e164 or c.cdr.billsec <= 0)
        ]
        instants = await effective_instants(conn, deck_name)
        if not instants:
            raise DeckNotFound(deck_name)
        chosen = {
            c.cdr.call_id: version if version is not None else _in_force(instants, c.cdr.started_at)
            for c in calls
        }
        used = sorted({v for v in chosen.values() if v is not None})
        if not used:  # no calls (or none a version was in force for): the one named, or head
            used = [version if version is not None else max(instants)]
        decks: dict[int, Deck] = {}
        for v in used:
            decks[v] = await load_deck_version(conn, deck_name, v)
            if decks[v].currency != account.currency:
                raise BillingError(
                    "deck", f"{decks[v].currency} deck for a {account.currency} account"
                )
        ref = rerate_reference(period, deck_name, used)
        lines, unrated = [], []
        for call in calls:
            picked = chosen[call.cdr.call_id]
            if picked is None:
                unrated.append({"call_id": call.cdr.call_id, "why": "no deck version in force"})
                continue
            try:
                lines.append(_line(decks[picked], call))
            except NoRate as exc:
                unrated.append({"call_id": call.cdr.call_id, "why": str(exc)})
        result = RerateResult(account.id, period, deck_name, max(used), ref, lines, unrated)
        if await conn.fetchval(
            "select 1 from rerates where account = $1 and reference = $2", account.id, ref
        ):
            return replace(result, already_applied=True, entry=await _entry(conn, account.id, ref))
        if not apply:
            return result
        return await _apply(store, conn, account, result, settings or BillingSettings(), now)


async def _entry(conn: Conn, account: str, reference: str) -> LedgerEntry | None:
    row = await conn.fetchrow(
        "select * from ledger_entries where account = $1 and reference = $2", account, reference
    )
    return None if row is None else LedgerEntry(**dict(row))


async def _apply(
    store: AccountStore,
    conn: Conn,
    account: Account,
    result: RerateResult,
    settings: BillingSettings,
    now: datetime,
) -> RerateResult:
    total = result.total
    entry = None
    if total:
        # the entry first: its reference makes a retry after a crash find it, not double it
        entry, _ = await store.add_entry(
            account.id,
            "adjustment",
            -total,
            result.reference,
            f"re-rating of {result.period} with {result.deck} v{result.version}",
            at=now,
        )
        if entry.amount != -total:
            raise BillingError(
                "deck", f"{result.reference} was booked as {entry.amount}, now it is {-total}"
            )
    note = None
    async with conn.transaction():
        rerate_id = await conn.fetchval(
            "insert into rerates (account, period, deck, deck_version, reference, total,"
            " entry_seq, applied_at) values ($1,$2,$3,$4,$5,$6,$7,$8)"
            " on conflict (account, reference) do nothing returning id",
            account.id,
            str(result.period),
            result.deck,
            result.version,
            result.reference,
            total,
            None if entry is None else entry.seq,
            now,
        )
        if rerate_id is None:  # a concurrent run applied it
            return replace(result, already_applied=True, entry=entry)
        await conn.executemany(
            "insert into rerate_calls (rerate_id, switch, call_id, rated, charge)"
            " values ($1,$2,$3,$4,$5)",
            [
                (rerate_id, ln.switch, ln.call_id, ln.new_rated, ln.new_charge)
                for ln in result.lines
            ],
        )
        note = await _credit_note(conn, account, result, settings, now)
    if note is not None:
        await book_rounding(store, note, now)
    return replace(result, applied=True, entry=entry, credit_note=note)


async def _credit_note(
    conn: Conn, account: Account, result: RerateResult, settings: BillingSettings, now: datetime
) -> Document | None:
    """A postpaid month already invoiced is corrected by a new document, never an edit."""
    if account.kind is not AccountKind.POSTPAID or not result.total:
        return None
    invoice = await by_source(conn, invoice_source(account.id, result.period))
    if invoice is None:
        return None  # the month's invoice, when issued, uses the new prices
    changed = sum(1 for line in result.lines if line.diff)
    draft = Draft(
        Kind.CREDIT_NOTE,
        account.id,
        f"credit/{account.id}/{result.reference}",
        account.currency,
        result.period.last_day,
        (_rerate_line(result, changed),),
        period=str(result.period),
        corrects=invoice.id,
        # the reason printed on the korekta (it names the corrected invoice itself)
        note=f"zmiana cen połączeń ({result.deck} v{result.version})",
    )
    doc, _ = await issue(conn, draft, settings, now)
    return doc


def _rerate_line(result: RerateResult, changed: int) -> Line:
    pl, en = line_text("rerate", period=result.period, deck=result.deck, version=result.version)
    return Line(pl, result.total, changed, text_en=en)
