"""Everything KSeF still has to get, in one pass (`tollgate bill ksef-pending`, run after
`bill run` by the operator's scheduler): every B2B VAT document not yet accepted is sent,
and every accepted one without its UPO has it asked for.

A pass never stops billing and never stops at one document: what fails is reported with
its number and tried again next pass. Two cases are left alone: a document KSeF is still
processing ('sent': sending it again could register it twice) and one KSeF rejected whose
XML has not changed since (it would be rejected again)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing.documents import Document
from billing.errors import BillingError
from billing.ksef_send import KsefGateway, fetch_upo, submit
from billing.ksef_xml import fa3_xml
from billing.printing import printable_doc
from billing.settings import BillingSettings
from core.pg import Conn

CANDIDATES = """
select d.*, k.status as ksef_status, k.xml_sha256, k.upo is not null as has_upo
from billing_documents d left join ksef_submissions k on k.document_id = d.id
where d.kind <> 'proforma'
  and coalesce(d.buyer->>'consumer', 'false') <> 'true'
  and (k.document_id is null or k.status <> 'accepted' or k.upo is null)
order by d.id
"""


@dataclass
class KsefPass:
    sent: list[dict[str, Any]] = field(default_factory=list)
    upo: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "upo": self.upo, "skipped": self.skipped, "failed": self.failed}


async def ksef_pass(
    conn: Conn, gateway: KsefGateway, settings: BillingSettings, now: datetime
) -> KsefPass:
    report = KsefPass()
    for row in await conn.fetch(CANDIDATES):
        doc = Document.from_row(row)
        try:
            await _one(conn, doc, row, gateway, settings, now, report)
        except BillingError as e:  # KSeF unreachable, refused, or the document unfit
            report.failed.append({"number": doc.number, "error": str(e)})
    return report


async def _one(
    conn: Conn,
    doc: Document,
    row: Any,
    gateway: KsefGateway,
    settings: BillingSettings,
    now: datetime,
    report: KsefPass,
) -> None:
    status = row["ksef_status"]
    if status == "accepted":
        report.upo.append({"number": doc.number, **await fetch_upo(conn, doc.id, gateway, now)})
        return
    if status == "sent":
        report.skipped.append({"number": doc.number, "why": "KSeF is still processing it"})
        return
    p = await printable_doc(conn, doc, settings)
    if p.buyer is None or not p.buyer.business:
        return  # a consumer's invoice does not go to KSeF here
    xml = fa3_xml(p, settings.exemption_basis)
    if status == "rejected" and row["xml_sha256"] == hashlib.sha256(xml).hexdigest():
        report.skipped.append({"number": doc.number, "why": "rejected by KSeF, unchanged"})
        return
    report.sent.append({"number": doc.number, **await submit(conn, doc.id, xml, gateway, now)})
