"""The rounding entry of a document: documents are in grosze, the ledger in micro-units.

A document's lines are rounded to the grosz when it is issued; the difference between what
the ledger holds for it and what the document asks is booked once as an adjustment
(reference `rounding/<source>`), so paying the printed total leaves exactly nothing owed and
no sub-grosz residue ever becomes a debt."""

from __future__ import annotations

from datetime import datetime

from billing.documents import Document
from billing.postpaid import ROUNDING_REF
from rating.account_store import AccountStore, LedgerEntry


def rounding_reference(doc: Document) -> str:
    return f"{ROUNDING_REF}{doc.source}"


async def book_rounding(store: AccountStore, doc: Document, now: datetime) -> LedgerEntry | None:
    """Book `doc`'s rounding at `now` (idempotent on its reference); None when it has none."""
    if not doc.rounding:
        return None
    entry, _ = await store.add_entry(
        doc.account,
        "adjustment",
        doc.rounding,
        rounding_reference(doc),
        f"{doc.number} rounded to grosze",
        at=now,
    )
    return entry
