"""A document made ready to print or send: its seller, buyer and what it refers to."""

from __future__ import annotations

from dataclasses import dataclass

from billing.buyer import buyer_of
from billing.documents import Document, Kind, by_number
from billing.errors import BillingError
from billing.parties import Party
from billing.pdf import PdfSettings, Related, render
from billing.settings import BillingSettings
from core.pg import Conn


class DocumentNotFound(BillingError):
    def __init__(self, number: str) -> None:
        super().__init__("number", f"no document {number!r}")
        self.number = number


@dataclass(frozen=True, slots=True)
class Printable:
    document: Document
    seller: Party
    buyer: Party | None
    related: Related


async def printable(conn: Conn, number: str, settings: BillingSettings) -> Printable:
    doc = await by_number(conn, number)
    if doc is None:
        raise DocumentNotFound(number)
    return await printable_doc(conn, doc, settings)


async def printable_doc(conn: Conn, doc: Document, settings: BillingSettings) -> Printable:
    """The parties the document kept; one issued before they were kept (or before a seller
    was configured) takes today's."""
    seller = doc.seller or (settings.seller.party if settings.seller else None)
    if seller is None:
        raise BillingError("TOLLGATE_SELLER_NAME", "no seller configured: documents need one")
    buyer = doc.buyer or await buyer_of(conn, doc.account)
    related = Related(paid=doc.kind is Kind.TOPUP_INVOICE)
    if doc.corrects is not None:
        row = await conn.fetchrow(
            "select d.number, d.issue_date, k.ksef_number from billing_documents d"
            " left join ksef_submissions k on k.document_id = d.id where d.id = $1",
            doc.corrects,
        )
        assert row is not None  # a foreign key
        related = Related(row["number"], row["issue_date"], row["ksef_number"] or "")
    return Printable(doc, seller, buyer, related)


async def document_pdf(
    conn: Conn, number: str, settings: BillingSettings, pdf: PdfSettings
) -> tuple[Document, bytes]:
    p = await printable(conn, number, settings)
    return p.document, render(p.document, p.seller, p.buyer, p.related, pdf)
