"""What a customer sees of its own account (operators may look at any): balance, ledger
entries, calls as pages of JSON or as a CSV download."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import Field

from cdr.export_format import DIALECTS, STANDARD, Dialect
from panel_api import outputs
from panel_api.auth import principal
from panel_api.cdr_query import FIELDS, CdrFilter, CdrQuery, Keyset, page, totals
from panel_api.context import EXPORT_GATE, PANEL, POOL, REDIS, SERVICES, SETTINGS, TOKENS
from panel_api.csv_export import Export, cdr_export, stream_csv
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import NotFound
from panel_api.exports import Exports
from panel_api.inputs import QUERY_TEXT, Input, choice, whole
from panel_api.metrics import METRICS
from panel_api.views import balance_view, entry_view, iso
from rating.money import format_micro

api = Api("customer")
TICKET = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CSV = Reply(200, "CSV, streamed", csv=True)


class BalanceQuery(Input):
    entries: Annotated[int, whole(0, 100)] = Field(
        10, description="How many recent ledger entries (default 10)"
    )


class EntriesQuery(Input):
    limit: Annotated[int, whole(1, 500)] = Field(50, description="Page size (default 50)")


class CdrPageQuery(CdrQuery):
    limit: Annotated[int, whole(1, 500)] = Field(50, description="Page size (default 50)")
    cursor: Annotated[str | None, QUERY_TEXT] = Field(
        None, description="next_cursor of the previous page"
    )


def format_field() -> Any:
    return Field(
        STANDARD.name,
        description="standard: RFC 4180, ISO 8601 times with offset; excel-pl: ';', decimal"
        " comma, UTF-8 BOM, local times (what Excel in Polish opens as it is)",
    )


class CsvQuery(CdrQuery):
    format: Annotated[str, choice(DIALECTS)] = format_field()


class TicketPath(Input):
    ticket: str


@api.get("/api/v1/me", "The token in use", ok=outputs.Token)
async def me(request: web.Request) -> web.Response:
    return web.json_response(principal(request).as_dict())


@api.get(
    "/api/v1/accounts/{account}/balance",
    "Balance, reservations, available credit and the latest ledger entries",
    ok=outputs.Balance,
)
async def balance(request: web.Request, account: str, query: BalanceQuery) -> web.Response:
    accounts = request.app[SERVICES].accounts
    # three independent reads (PostgreSQL, Redis, PostgreSQL): wait for the slowest only
    found, live, recent = await asyncio.gather(
        accounts.get(account), accounts.live(account), accounts.entries(account, query.entries)
    )
    view = balance_view(found, live)
    view["entries"] = [entry_view(e) for e in recent]
    return web.json_response(view)


@api.get(
    "/api/v1/accounts/{account}/entries",
    "Ledger entries (top-ups, payments, fees), newest first",
    ok=outputs.LedgerEntries,
)
async def entries(request: web.Request, account: str, query: EntriesQuery) -> web.Response:
    accounts = request.app[SERVICES].accounts
    await accounts.get(account)  # 404 for an unknown account, not an empty list
    return web.json_response(
        {"items": [entry_view(e) for e in await accounts.entries(account, query.limit)]}
    )


def _cdr_json(row: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, column in FIELDS:
        value = row[column]
        if name.endswith("_at"):
            out[name] = iso(value)
        elif name == "cost":
            out[name] = format_micro(value)
        else:
            out[name] = value
    return out


@api.get(
    "/api/v1/accounts/{account}/cdrs",
    "Calls, newest first, one page at a time (keyset pagination)",
    ok=outputs.CdrPage,
)
async def cdrs(request: web.Request, account: str, query: CdrPageQuery) -> web.Response:
    found = await request.app[SERVICES].accounts.get(account)
    flt = query.filter(account, found.timezone)
    after = Keyset.decode(query.cursor) if query.cursor else None
    async with request.app[POOL].acquire() as conn:
        rows, following = await page(conn, flt, query.limit, after)
    return web.json_response(
        {
            "filter": flt.as_dict(),
            "items": [_cdr_json(r) for r in rows],
            "next_cursor": following.encode() if following is not None else None,
        }
    )


@api.get(
    "/api/v1/accounts/{account}/cdrs/totals",
    "Totals of the matching calls (the listing's filter): all, and per number class",
    ok=outputs.CdrTotals,
)
async def cdr_totals(request: web.Request, account: str, query: CdrQuery) -> web.Response:
    found = await request.app[SERVICES].accounts.get(account)
    flt = query.filter(account, found.timezone)
    async with request.app[POOL].acquire() as conn:
        rows = await totals(conn, flt)
    total = {"calls": 0, "answered": 0, "billsec": 0, "cost": 0}
    by_class: dict[str, dict[str, Any]] = {}
    for r in rows:
        one = {k: int(r[k]) for k in total}
        for k in total:
            total[k] += one[k]
        by_class[r["number_class"] or "-"] = {**one, "cost": format_micro(one["cost"])}
    return web.json_response(
        {
            "filter": flt.as_dict(),
            "currency": found.currency,
            "total": {**total, "cost": format_micro(total["cost"])},
            "by_class": by_class,
        }
    )


async def download(request: web.Request, export: Export, token_id: str) -> web.StreamResponse:
    """On the export budget (own pool, a few per token), never the interactive pool."""
    gate = request.app[EXPORT_GATE]
    async with gate.connection(token_id) as conn:
        return await stream_csv(
            request,
            conn,
            export,
            request.app[PANEL].csv_batch,
            gate,
            request.app[METRICS].csv_rows.inc,
        )


async def _download(
    request: web.Request, flt: CdrFilter, token_id: str, dialect: Dialect
) -> web.StreamResponse:
    return await download(request, cdr_export(flt, dialect), token_id)


@api.get(
    "/api/v1/accounts/{account}/cdrs.csv",
    "Every matching call as CSV, oldest first, in the account's time zone (cells that a"
    " spreadsheet would run as a formula start with an apostrophe; E.164 numbers do not)",
    replies=(CSV,),
)
async def cdrs_csv(request: web.Request, account: str, query: CsvQuery) -> web.StreamResponse:
    found = await request.app[SERVICES].accounts.get(account)
    flt = query.filter(account, found.timezone)
    return await _download(request, flt, principal(request).id, DIALECTS[query.format])


def _exports(request: web.Request) -> Exports:
    return Exports(
        request.app[REDIS], request.app[SETTINGS].keyspace.prefix, request.app[PANEL].download_ttl_s
    )


@api.post(
    "/api/v1/accounts/{account}/cdrs/exports",
    "A one-time link (valid a minute) to the CSV, for browsers",
    replies=(Reply(201, "Created", outputs.Export),),
)
async def create_export(request: web.Request, account: str, query: CsvQuery) -> web.Response:
    found = await request.app[SERVICES].accounts.get(account)
    flt = query.filter(account, found.timezone)
    ticket = await _exports(request).issue(flt, principal(request).id, query.format)
    return web.json_response(
        {
            "url": f"/api/v1/exports/{ticket}",
            "expires_in_s": request.app[PANEL].download_ttl_s,
            "filter": flt.as_dict(),
        },
        status=201,
    )


@api.get(
    "/api/v1/exports/{ticket}",
    "Download through a one-time link (the link is the credential)",
    access=Access.PUBLIC,
    replies=(CSV,),
    errors=(400, 404, 429, 503),  # 400: a link longer than the panel reads
)
async def export(request: web.Request, path: TicketPath) -> web.StreamResponse:
    ticket = path.ticket
    exports = _exports(request)
    holder = await exports.holder(ticket) if TICKET.match(ticket) else None
    if holder is not None:
        # a token with no download to spare gets 429 and keeps its link for a retry
        request.app[EXPORT_GATE].check_room(holder)
    found = await exports.redeem(ticket) if holder is not None else None
    # a link outlives neither its token's revocation nor its expiry
    if found is None or not await request.app[TOKENS].live(found.token_id, datetime.now(UTC)):
        raise NotFound(
            "no such download link (used already, or expired)",
            {"resource": "export"},
            code="EXPORT_NOT_FOUND",
        )
    return await _download(request, found.filter, found.token_id, DIALECTS[found.dialect])
