"""Invoices and credit notes: issued once per source, numbered, immutable in PostgreSQL.

A document's amounts are gross line totals split once into net and VAT (vat.py). Issuing is
idempotent on `source` (what it is issued for); the database refuses UPDATE and DELETE of
an issued document, so a correction is a new document, a credit note pointing at it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from billing.business_days import next_business_day
from billing.buyer import buyer_of
from billing.numbering import Number, next_number
from billing.parties import Party
from billing.settings import BillingSettings
from billing.vat import RateTotal, code_of_bp, to_minor, totals_by_rate
from core.pg import Conn
from rating.money import format_micro


class Kind(StrEnum):
    INVOICE = "invoice"  # postpaid: a month's calls and fees, due later
    TOPUP_INVOICE = "topup_invoice"  # prepaid: one per top-up, paid when issued
    CREDIT_NOTE = "credit_note"  # corrects an invoice; negative gross credits the customer
    PROFORMA = "proforma"  # asks for payment before a period; not a VAT invoice


# pro-formas are numbered in their own series: they are not VAT invoices
PREFIX = {
    Kind.INVOICE: "INV",
    Kind.TOPUP_INVOICE: "INV",
    Kind.CREDIT_NOTE: "CN",
    Kind.PROFORMA: "PF",
}
VAT_DOCUMENTS = frozenset({Kind.INVOICE, Kind.TOPUP_INVOICE, Kind.CREDIT_NOTE})


@dataclass(frozen=True, slots=True)
class Line:
    text: str  # Polish: the document's language (billing/labels.py)
    gross: int  # micro-units, as booked in the ledger
    quantity: int = 1
    seconds: int = 0
    vat: str = ""  # rate code ('23', 'zw', 'np'); empty: the operator's default rate
    unit: str = ""  # as printed: 'szt.' when empty
    text_en: str = ""  # the text in English, printed as a second language when asked

    def as_dict(self, default_rate: str) -> dict[str, Any]:
        """As printed: the gross in whole grosze, the rate resolved."""
        return {
            "text": self.text,
            **({"text_en": self.text_en} if self.text_en else {}),
            "quantity": self.quantity,
            "seconds": self.seconds,
            "gross": to_minor(self.gross),
            "vat": self.vat or default_rate,
            "unit": self.unit or UNIT,
        }


UNIT = "szt."


@dataclass(frozen=True, slots=True)
class Draft:
    """What to issue; numbers, dates and the VAT split are added when it is issued."""

    kind: Kind
    account: str
    source: str
    currency: str
    sale_date: date
    lines: tuple[Line, ...]
    period: str | None = None
    corrects: int | None = None
    note: str = ""  # a credit note's reason
    payment_method: str = ""  # how it is (or was) paid: 'transfer', 'card', 'gateway'
    due_date: date | None = None  # instead of issue date + due_days (a pro-forma's period)

    @property
    def exact(self) -> int:
        """What the lines add up to in the ledger (micro-units)."""
        return sum(line.gross for line in self.lines)

    @property
    def gross(self) -> int:
        """What the document asks: the sum of its lines rounded to grosze."""
        return sum(to_minor(line.gross) for line in self.lines)


@dataclass(frozen=True, slots=True)
class Document:
    id: int
    number: str
    kind: Kind
    account: str
    source: str
    period: str | None
    corrects: int | None
    currency: str
    vat_rate_bp: int
    net: int
    vat: int
    gross: int
    sale_date: date
    issue_date: date
    due_date: date | None
    issued_at: datetime
    lines: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    note: str = ""
    exact: int | None = None  # micro-units behind it in the ledger (None: = gross)
    vat_totals: tuple[RateTotal, ...] = ()
    seller: Party | None = None
    buyer: Party | None = None
    payment_method: str = ""

    @property
    def totals(self) -> tuple[RateTotal, ...]:
        """Totals per rate; a document issued before rates per line has one."""
        if self.vat_totals:
            return self.vat_totals
        return (RateTotal(code_of_bp(self.vat_rate_bp), self.net, self.vat, self.gross),)

    @property
    def rates(self) -> list[str]:
        """Each line's rate code, in line order."""
        default = code_of_bp(self.vat_rate_bp)
        return [str(ln.get("vat") or default) for ln in self.lines]

    @property
    def rounding(self) -> int:
        """The ledger amount minus the document's (booked as a rounding entry)."""
        return 0 if self.exact is None else self.exact - self.gross

    @classmethod
    def from_row(cls, row: asyncpg.Record | Mapping[str, Any]) -> Document:
        return cls(
            id=row["id"],
            number=row["number"],
            kind=Kind(row["kind"]),
            account=row["account"],
            source=row["source"],
            period=row["period"],
            corrects=row["corrects"],
            currency=row["currency"],
            vat_rate_bp=row["vat_rate_bp"],
            net=row["net"],
            vat=row["vat"],
            gross=row["gross"],
            sale_date=row["sale_date"],
            issue_date=row["issue_date"],
            due_date=row["due_date"],
            issued_at=row["issued_at"],
            lines=tuple(json.loads(row["lines"])),
            note=row["note"],
            exact=row["exact"],
            vat_totals=tuple(
                RateTotal(t["rate"], t["net"], t["vat"], t["gross"])
                for t in json.loads(row["vat_totals"] or "[]")
            ),
            seller=_party(row["seller"]),
            buyer=_party(row["buyer"]),
            payment_method=row["payment_method"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind.value,
            "account": self.account,
            "period": self.period,
            "corrects": self.corrects,
            "currency": self.currency,
            "vat_rate": f"{self.vat_rate_bp / 100:g}%",
            "net": format_micro(self.net, 2),
            "vat": format_micro(self.vat, 2),
            "gross": format_micro(self.gross, 2),
            "sale_date": self.sale_date.isoformat(),
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "issued_at": self.issued_at.isoformat(),
            "lines": [
                {**ln, "gross": format_micro(ln["gross"], 2), "vat": rate}
                for ln, rate in zip(self.lines, self.rates, strict=True)
            ],
            "vat_totals": [
                {
                    "rate": t.code,
                    "net": format_micro(t.net, 2),
                    "vat": format_micro(t.vat, 2),
                    "gross": format_micro(t.gross, 2),
                }
                for t in self.totals
            ],
            "seller": None if self.seller is None else self.seller.as_dict(),
            "buyer": None if self.buyer is None else self.buyer.as_dict(),
            "payment_method": self.payment_method,
            "note": self.note,
        }


def _party(raw: str | None) -> Party | None:
    return None if raw is None else Party.from_dict(json.loads(raw))


async def issue(
    conn: Conn, draft: Draft, settings: BillingSettings, now: datetime
) -> tuple[Document, bool]:
    """Issue `draft` unless its source already has a document (returned with False)."""
    async with conn.transaction():
        # one issuer per source at a time: the loser finds the winner's document below
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", draft.source)
        found = await by_source(conn, draft.source)
        if found is not None:
            return found, False
        issue_date = now.astimezone(ZoneInfo(settings.timezone)).date()
        buyer = await buyer_of(conn, draft.account)
        number = await next_number(conn, PREFIX[draft.kind], issue_date)
        row = await conn.fetchrow(
            f"{INSERT} returning *", *row_values(draft, number, buyer, settings, now)
        )
    assert row is not None  # returning * always yields the row
    return Document.from_row(row), True


INSERT = (
    "insert into billing_documents (number, series, seq, kind, account, source, period,"
    " corrects, currency, vat_rate_bp, net, vat, gross, sale_date, issue_date, due_date,"
    " issued_at, lines, note, created_at, exact, vat_totals, seller, buyer,"
    " payment_method) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,"
    "$11,$12,$13,$14,$15,$16,$17,$18,$19,$17,$20,$21,$22,$23,$24)"
)


def row_values(
    draft: Draft, number: Number, buyer: Party | None, settings: BillingSettings, now: datetime
) -> tuple[Any, ...]:
    """INSERT's arguments for `draft` issued at `now` with `number`: dates, the VAT split
    per rate, the parties as they are now."""
    return Issuing.of(draft, number, buyer, settings, now).values()


@dataclass(frozen=True, slots=True)
class Issuing:
    """A draft with what issuing adds (number, dates, lines as printed, VAT split per rate,
    parties): the row written, and the document it is read back as."""

    draft: Draft
    number: Number
    issue_date: date
    due: date | None
    lines: list[dict[str, Any]]
    totals: tuple[RateTotal, ...]
    seller: Party | None
    buyer: Party | None
    vat_rate_bp: int
    now: datetime

    @classmethod
    def of(
        cls,
        draft: Draft,
        number: Number,
        buyer: Party | None,
        settings: BillingSettings,
        now: datetime,
    ) -> Issuing:
        issue_date = _local_date(now, settings.timezone)
        due = draft.due_date or (
            issue_date + timedelta(days=settings.due_days)
            if draft.kind in (Kind.INVOICE, Kind.PROFORMA)
            else None
        )
        default = code_of_bp(settings.vat_rate_bp)
        lines = [line.as_dict(default) for line in draft.lines]
        totals = totals_by_rate([(ln["vat"], ln["gross"]) for ln in lines], settings.vat_decimals)
        return cls(
            draft,
            number,
            issue_date,
            # a day off moves a payment deadline on (art. 115 KC)
            None if due is None else next_business_day(due),
            lines,
            totals,
            None if settings.seller is None else settings.seller.party,
            buyer,
            settings.vat_rate_bp,
            now,
        )

    def values(self) -> tuple[Any, ...]:
        d, totals = self.draft, self.totals
        return (
            str(self.number),
            self.number.series,
            self.number.seq,
            d.kind.value,
            d.account,
            d.source,
            d.period,
            d.corrects,
            d.currency,
            self.vat_rate_bp,
            sum(t.net for t in totals),
            sum(t.vat for t in totals),
            d.gross,
            d.sale_date,
            self.issue_date,
            self.due,
            self.now,
            json.dumps(self.lines),
            d.note,
            d.exact,
            json.dumps([t.as_dict() for t in totals]),
            None if self.seller is None else _party_json(self.seller),
            None if self.buyer is None else json.dumps(self.buyer.as_dict()),
            d.payment_method,
        )

    def document(self, id: int) -> Document:
        """What reading the row back gives (Document.from_row), without the round trip
        through JSON."""
        d, totals = self.draft, self.totals
        return Document(
            id=id,
            number=str(self.number),
            kind=d.kind,
            account=d.account,
            source=d.source,
            period=d.period,
            corrects=d.corrects,
            currency=d.currency,
            vat_rate_bp=self.vat_rate_bp,
            net=sum(t.net for t in totals),
            vat=sum(t.vat for t in totals),
            gross=d.gross,
            sale_date=d.sale_date,
            issue_date=self.issue_date,
            due_date=self.due,
            issued_at=self.now.astimezone(UTC),  # PostgreSQL hands instants back in UTC
            lines=tuple(dict(ln) for ln in self.lines),
            note=d.note,
            exact=d.exact,
            vat_totals=totals,
            seller=None if self.seller is None else _as_read(self.seller),
            buyer=None if self.buyer is None else _as_read(self.buyer),
            payment_method=d.payment_method,
        )


# Constant within a run (one instant, one seller): computed once each.
@lru_cache(maxsize=64)
def _local_date(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


@lru_cache(maxsize=16)
def _party_json(party: Party) -> str:
    return json.dumps(party.as_dict())


def _as_read(party: Party) -> Party:
    """A party as a document read back holds it (from_dict fills empty defaults)."""
    return Party.from_dict(party.as_dict())


async def by_source(conn: Conn, source: str) -> Document | None:
    row = await conn.fetchrow("select * from billing_documents where source = $1", source)
    return None if row is None else Document.from_row(row)


async def by_number(conn: Conn, number: str) -> Document | None:
    row = await conn.fetchrow("select * from billing_documents where number = $1", number)
    return None if row is None else Document.from_row(row)


async def documents_of(conn: Conn, account: str) -> list[Document]:
    """An account's documents in the order they were issued."""
    rows = await conn.fetch(
        "select * from billing_documents where account = $1 order by id", account
    )
    return [Document.from_row(r) for r in rows]
