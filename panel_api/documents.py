"""A customer's billing documents (billing): the statement of a billing period (calls
and totals by class and destination) and its invoices, with what is paid and owed."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from billing.documents import Kind, by_number, documents_of
from billing.ksef_state import ksef_states
from billing.listing import BILLED
from billing.pdf import PdfSettings, render
from billing.period import Period
from billing.postpaid import invoice_statuses, today_of
from billing.printing import printable_doc
from billing.settings import BillingSettings
from cdr.export_format import DIALECTS
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import EXPORT_GATE, POOL, SERVICES
from panel_api.csv_export import Export, line_sql
from panel_api.customer import CSV, download, format_field
from panel_api.endpoint import Api, Reply
from panel_api.errors import not_found
from panel_api.inputs import (
    PERIOD_PATTERN,
    Checked,
    Input,
    choice,
    refuse,
    string,
    text,
)
from panel_api.statement_stream import statement_totals, stream_statement
from rating.accounts import AccountKind

api = Api("customer")
BILLING = web.AppKey("billing", BillingSettings)
PDF_SETTINGS = web.AppKey("pdf", PdfSettings)


def _period(value: object) -> Period:
    if not re.fullmatch(PERIOD_PATTERN, text(value)):
        raise refuse("a month, YYYY-MM")
    return Period.parse(str(value))


class StatementPath(Input):
    period: Annotated[Period, Checked(_period, {"type": "string", "pattern": PERIOD_PATTERN})]


class StatementQuery(Input):
    calls: Annotated[str | None, choice(("true", "false"))] = Field(
        None, description="false: the totals only, no calls (default true)"
    )


class FormatQuery(Input):
    format: Annotated[str, choice(DIALECTS)] = format_field()


@api.get(
    "/api/v1/accounts/{account}/statements/{period}.csv",
    "The calls of a statement (what each costs now, re-rated or not) in the CDR export"
    " format, oldest first",
    replies=(CSV,),
    route=r"/api/v1/accounts/{account}/statements/{period:[0-9]{4}-[0-9]{2}}.csv",
)
async def statement_csv(
    request: web.Request, account: str, path: StatementPath, query: FormatQuery
) -> web.StreamResponse:
    found = await request.app[SERVICES].accounts.get(account)
    start, end = path.period.bounds(found.timezone)
    dialect = DIALECTS[query.format]
    export = Export(
        f"select {line_sql(dialect, 'billed_charge')} from ({BILLED}) c",
        [found.id, start, end],
        found.timezone,
        f"statement-{found.id}-{path.period}.csv",
        dialect,
    )
    return await download(request, export, principal(request).id)


@api.get(
    "/api/v1/accounts/{account}/statements/{period}",
    "The statement of a billing period (a month in the account's zone): calls and"
    " totals by class and destination",
    ok=outputs.Statement,
)
async def statement(
    request: web.Request, account: str, path: StatementPath, query: StatementQuery
) -> web.StreamResponse:
    """Streamed, on the download budget: a month can hold many thousand calls. Without
    them (calls=false) it is a small answer, as the portal's totals need."""
    found = await request.app[SERVICES].accounts.get(account)
    if query.calls == "false":
        async with request.app[POOL].acquire() as conn:
            return web.json_response(await statement_totals(conn, found, path.period))
    gate = request.app[EXPORT_GATE]
    async with gate.connection(principal(request).id) as conn:
        return await stream_statement(request, conn, found, path.period, gate)


@api.get(
    "/api/v1/accounts/{account}/invoices",
    "Invoices, top-up invoices and credit notes, with what is paid and owed",
    ok=outputs.Documents,
)
async def invoices(request: web.Request, account: str) -> web.Response:
    """Invoices, top-up invoices and credit notes, oldest first; a postpaid invoice carries
    what is owed, paid and outstanding on it, and whether it is overdue; a document sent to
    KSeF its KSeF number and whether KSeF's receipt (UPO) is kept."""
    found = await request.app[SERVICES].accounts.get(account)
    settings = request.app[BILLING]
    async with request.app[POOL].acquire() as conn:
        docs = await documents_of(conn, found.id)
        statuses = {st.document.id: st for st in await invoice_statuses(conn, found.id)}
        ksef = await ksef_states(conn, [d.id for d in docs])
    today = today_of(datetime.now(UTC), settings)
    out: list[dict[str, Any]] = []
    for doc in docs:
        view = {**doc.as_dict(), "ksef": ksef.get(doc.id)}
        status = statuses.get(doc.id)
        if doc.kind is Kind.TOPUP_INVOICE:
            view["status"] = "paid"  # a prepaid top-up is paid when it is invoiced
        elif status is not None and found.kind is AccountKind.POSTPAID:
            view.update(status.as_dict())
            if not status.outstanding:
                view["status"] = "paid"
            elif status.overdue(today, settings.overdue_block_days):
                view["status"] = "overdue"
            else:
                view["status"] = "unpaid"
        out.append(view)
    return web.json_response({"items": out})


DOCUMENT_NUMBER = r"[A-Z]{2,3}/[0-9]{4}/[0-9]{2}/[0-9]{6}"
PDF = Reply(200, "The document as PDF", media="application/pdf")


class DocumentPath(Input):
    number: Annotated[str, string(32, pattern=f"^{DOCUMENT_NUMBER}$")]


@api.get(
    "/api/v1/accounts/{account}/documents/{number}/pdf",
    "A document (invoice, credit note, pro-forma) of the account as PDF",
    route="/api/v1/accounts/{account}/documents/{number:" + DOCUMENT_NUMBER + "}/pdf",
    replies=(PDF,),
)
async def document_pdf(request: web.Request, account: str, path: DocumentPath) -> web.Response:
    """A customer reads its own accounts' documents, an operator any; another account's
    document is 404 like a missing one."""
    async with request.app[POOL].acquire() as conn:
        doc = await by_number(conn, path.number)
        if doc is None or doc.account != account:
            raise not_found("document", path.number)
        p = await printable_doc(conn, doc, request.app[BILLING])
    data = await asyncio.to_thread(
        render, p.document, p.seller, p.buyer, p.related, request.app[PDF_SETTINGS]
    )
    name = doc.number.replace("/", "-")
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )
