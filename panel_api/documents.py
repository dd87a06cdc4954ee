"""A customer's billing documents (billing): the statement of a billing period (calls
and totals by class and destination) and its invoices, with what is paid and owed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web

from billing.documents import Kind, documents_of
from billing.period import Period
from billing.postpaid import invoice_statuses, today_of
from billing.settings import BillingSettings
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import EXPORT_GATE, POOL, SERVICES
from panel_api.endpoint import Api
from panel_api.inputs import PERIOD_PATTERN, Checked, Input, refuse, text
from panel_api.statement_stream import stream_statement
from rating.accounts import AccountKind

api = Api("customer")
BILLING = web.AppKey("billing", BillingSettings)


def _period(value: object) -> Period:
    if not re.fullmatch(PERIOD_PATTERN, text(value)):
        raise refuse("a month, YYYY-MM")
    return Period.parse(str(value))


class StatementPath(Input):
    period: Annotated[Period, Checked(_period, {"type": "string", "pattern": PERIOD_PATTERN})]


@api.get(
    "/api/v1/accounts/{account}/statements/{period}",
    "The statement of a billing period (a month in the account's zone): calls and"
    " totals by class and destination",
    ok=outputs.Statement,
)
async def statement(request: web.Request, account: str, path: StatementPath) -> web.StreamResponse:
    """Streamed, on the download budget: a month can hold many thousand calls."""
    found = await request.app[SERVICES].accounts.get(account)
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
    what is owed, paid and outstanding on it, and whether it is overdue."""
    found = await request.app[SERVICES].accounts.get(account)
    settings = request.app[BILLING]
    async with request.app[POOL].acquire() as conn:
        docs = await documents_of(conn, found.id)
        statuses = {st.document.id: st for st in await invoice_statuses(conn, found.id)}
    today = today_of(datetime.now(UTC), settings)
    out: list[dict[str, Any]] = []
    for doc in docs:
        view = doc.as_dict()
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
