"""Documents to their buyers by e-mail: each document with a buyer e-mail is written once to
notify's outbox with its PDF attached (key document/<number>); notify sends it.

Run as its own pass (`tollgate mail send`), never inside issuing or booking a payment: a
mail server that is down, or a seller not configured yet, never holds billing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing.documents import Document, Kind
from billing.errors import BillingError
from billing.pdf import TITLE, PdfSettings, money, render
from billing.printing import printable_doc
from billing.settings import BillingSettings
from core.pg import Conn
from notify.outbox import Attachment, Mail, enqueue

log = logging.getLogger("tollgate.billing")


@dataclass
class MailingReport:
    queued: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # number -> why

    def as_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "skipped": self.skipped}


def mail_of(doc: Document, pdf: bytes, recipient: str) -> Mail:
    title = f"{TITLE[doc.kind]} {doc.number}"
    lines = [
        "Dzień dobry,",
        "",
        f"w załączniku przesyłamy dokument: {title}.",
        f"Kwota: {money(abs(doc.gross))} {doc.currency}.",
    ]
    if doc.due_date is not None and doc.kind in (Kind.INVOICE, Kind.PROFORMA):
        lines.append(f"Termin płatności: {doc.due_date.isoformat()}.")
    name = doc.number.replace("/", "-") + ".pdf"
    return Mail(
        key=f"document/{doc.number}",
        recipient=recipient,
        subject=title,
        body="\n".join(lines) + "\n",
        attachment=Attachment(name, "application/pdf", pdf),
    )


async def queue_documents(
    conn: Conn, settings: BillingSettings, pdf: PdfSettings, now: datetime, limit: int = 500
) -> MailingReport:
    """Queue the documents that have a buyer e-mail and no message yet (documents issued
    before buyers were kept on them are not mailed)."""
    rows = await conn.fetch(
        "select d.* from billing_documents d where d.buyer ->> 'email' <> ''"
        " and not exists (select 1 from mail_outbox m where m.key = 'document/' || d.number)"
        " order by d.id limit $1",
        limit,
    )
    report = MailingReport()
    for row in rows:
        doc = Document.from_row(row)
        assert doc.buyer is not None  # the query asks for its e-mail
        try:
            p = await printable_doc(conn, doc, settings)
        except BillingError as e:
            report.skipped[doc.number] = str(e)
            continue
        data = await asyncio.to_thread(render, p.document, p.seller, p.buyer, p.related, pdf)
        if await enqueue(conn, mail_of(doc, data, doc.buyer.email), now):
            report.queued.append(doc.number)
    if report.skipped:
        log.warning("documents not mailed: %s", report.skipped)
    return report
