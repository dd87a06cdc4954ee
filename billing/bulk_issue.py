"""Issuing many documents in one transaction (a bill run's invoices and pro-formas).

The same documents `documents.issue` makes one by one, in a constant number of statements:
every source locked (the advisory lock `issue` takes, in hash order so two batches never wait
on each other in a cycle), sources already issued returned as they are, the buyers read at
once, each series' numbers taken as one block (the counter row stays locked until commit, so
numbers stay gapless and a rollback gives them all back), one INSERT of the rows. Numbers
follow the order of the drafts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from billing.buyer import party_of
from billing.documents import PREFIX, Document, Draft, Issuing
from billing.numbering import Number, series_of
from billing.settings import BillingSettings
from core.pg import Conn
from customers.store import customers_of_accounts

# the rows' columns and their types, written by one INSERT from arrays
_COLUMNS = {
    "number": "text", "series": "text", "seq": "integer", "kind": "text", "account": "text",
    "source": "text", "period": "text", "corrects": "bigint", "currency": "text",
    "vat_rate_bp": "integer", "net": "bigint", "vat": "bigint", "gross": "bigint",
    "sale_date": "date", "issue_date": "date", "due_date": "date", "issued_at": "timestamptz",
    "lines": "jsonb", "note": "text", "exact": "bigint", "vat_totals": "jsonb",
    "seller": "jsonb", "buyer": "jsonb", "payment_method": "text", "created_at": "timestamptz",
}  # fmt: skip
INSERT_MANY = (
    f"insert into billing_documents ({', '.join(_COLUMNS)}) select * from unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate(_COLUMNS.values(), 1))
    + ") returning source, id"
)


async def take_numbers(conn: Conn, series: str, count: int) -> list[Number]:
    """The next `count` numbers of `series`; inside the transaction that issues them."""
    # one statement: a new series starts at `count`, an existing one moves on by it (its
    # row stays locked until commit: no other issuer takes a number in between)
    last = int(
        await conn.fetchval(
            "insert into document_series as s (series, last_seq) values ($1, $2)"
            " on conflict (series) do update set last_seq = s.last_seq + excluded.last_seq"
            " returning last_seq",
            series,
            count,
        )
    )
    return [Number(series, seq) for seq in range(last - count + 1, last + 1)]


async def issue_many(
    conn: Conn, drafts: Sequence[Draft], settings: BillingSettings, now: datetime
) -> dict[str, tuple[Document, bool]]:
    """Issue every draft whose source has no document yet: source -> (document, True if
    issued by this call)."""
    if not drafts:
        return {}
    sources = [d.source for d in drafts]
    async with conn.transaction():
        await conn.execute(
            "select pg_advisory_xact_lock(h) from"
            " (select distinct hashtext(s) as h from unnest($1::text[]) s order by 1) x",
            sources,
        )
        out = {d.source: (d, False) for d in await _by_sources(conn, sources)}
        new = [d for d in {d.source: d for d in drafts}.values() if d.source not in out]
        if new:
            customers = await customers_of_accounts(conn, sorted({d.account for d in new}))
            issue_date = now.astimezone(ZoneInfo(settings.timezone)).date()
            numbers: dict[str, Iterator[Number]] = {}
            for prefix in dict.fromkeys(PREFIX[d.kind] for d in new):
                count = sum(1 for d in new if PREFIX[d.kind] == prefix)
                taken = await take_numbers(conn, series_of(prefix, issue_date), count)
                numbers[prefix] = iter(taken)
            issuing = [
                Issuing.of(
                    d,
                    next(numbers[PREFIX[d.kind]]),
                    None if (buyer := customers.get(d.account)) is None else party_of(buyer),
                    settings,
                    now,
                )
                for d in new
            ]
            columns = zip(*[(*i.values(), now) for i in issuing], strict=True)
            ids = {r["source"]: r["id"] for r in await conn.fetch(INSERT_MANY, *map(list, columns))}
            # what reading the rows back gives, without reading and decoding them again
            out.update({i.draft.source: (i.document(ids[i.draft.source]), True) for i in issuing})
    return {s: out[s] for s in sources}


async def _by_sources(conn: Conn, sources: list[str]) -> list[Document]:
    rows = await conn.fetch(
        "select * from billing_documents where source = any($1::text[]) order by id", sources
    )
    return [Document.from_row(r) for r in rows]
