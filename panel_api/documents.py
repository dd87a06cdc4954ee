"""A customer's billing documents (billing): the statement of a billing period (calls
and totals by class and destination) and its invoices, with what is paid and owed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from billing.documents import Kind, documents_of
from billing.period import Period
from billing.postpaid import invoice_statuses, today_of
from billing.settings import BillingSettings
from panel_api.auth import principal, readable_account
from panel_api.context import EXPORT_GATE, POOL, SERVICES
from panel_api.params import invalid
from panel_api.statement_stream import stream_statement
from rating.accounts import AccountKind

routes = web.RouteTableDef()
BILLING = web.AppKey("billing", BillingSettings)
PERIOD = re.compile(r"^[0-9]{4}-[0-9]{2}$")


def _period(request: web.Request) -> Period:
    text = request.match_info["period"]
    if not PERIOD.match(text) or not 1 <= int(text[5:]) <= 12 or not 2000 <= int(text[:4]) < 2200:
        raise invalid("period", "a month, YYYY-MM")
    return Period.parse(text)


@routes.get("/api/v1/accounts/{account}/statements/{period}")
async def statement(request: web.Request) -> web.StreamResponse:
    """Streamed, on the download budget: a month can hold many thousand calls."""
    account_id = readable_account(request)
    period = _period(request)
    account = await request.app[SERVICES].accounts.get(account_id)
    gate = request.app[EXPORT_GATE]
    async with gate.connection(principal(request).id) as conn:
        return await stream_statement(request, conn, account, period, gate)


@routes.get("/api/v1/accounts/{account}/invoices")
async def invoices(request: web.Request) -> web.Response:
    """Invoices, top-up invoices and credit notes, oldest first; a postpaid invoice carries
    what is owed, paid and outstanding on it, and whether it is overdue."""
    account = await request.app[SERVICES].accounts.get(readable_account(request))
    settings = request.app[BILLING]
    async with request.app[POOL].acquire() as conn:
        docs = await documents_of(conn, account.id)
        statuses = {st.document.id: st for st in await invoice_statuses(conn, account.id)}
    today = today_of(datetime.now(UTC), settings)
    out: list[dict[str, Any]] = []
    for doc in docs:
        view = doc.as_dict()
        status = statuses.get(doc.id)
        if doc.kind is Kind.TOPUP_INVOICE:
            view["status"] = "paid"  # a prepaid top-up is paid when it is invoiced
        elif status is not None and account.kind is AccountKind.POSTPAID:
            view.update(status.as_dict())
            if not status.outstanding:
                view["status"] = "paid"
            elif status.overdue(today, settings.overdue_block_days):
                view["status"] = "overdue"
            else:
                view["status"] = "unpaid"
        out.append(view)
    return web.json_response({"items": out})
