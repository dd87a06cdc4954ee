"""What a customer sees of its own account (operators may look at any): balance, ledger
entries, calls as pages of JSON or as a CSV download."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from panel_api.auth import principal, readable_account
from panel_api.cdr_query import FIELDS, CdrFilter, Keyset, page
from panel_api.context import EXPORT_GATE, PANEL, POOL, REDIS, SERVICES, SETTINGS, TOKENS
from panel_api.csv_export import stream_csv
from panel_api.errors import NotFound
from panel_api.exports import Exports
from panel_api.metrics import METRICS
from panel_api.params import integer
from panel_api.views import balance_view, entry_view, iso
from rating.money import format_micro

routes = web.RouteTableDef()
TICKET = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    return web.json_response(principal(request).as_dict())


@routes.get("/api/v1/accounts/{account}/balance")
async def balance(request: web.Request) -> web.Response:
    account_id = readable_account(request)
    limit = integer(request.query, "entries", 10, 0, 100)
    accounts = request.app[SERVICES].accounts
    # three independent reads (PostgreSQL, Redis, PostgreSQL): wait for the slowest only
    account, live, recent = await asyncio.gather(
        accounts.get(account_id), accounts.live(account_id), accounts.entries(account_id, limit)
    )
    view = balance_view(account, live)
    view["entries"] = [entry_view(e) for e in recent]
    return web.json_response(view)


@routes.get("/api/v1/accounts/{account}/entries")
async def entries(request: web.Request) -> web.Response:
    account_id = readable_account(request)
    accounts = request.app[SERVICES].accounts
    await accounts.get(account_id)  # 404 for an unknown account, not an empty list
    limit = integer(request.query, "limit", 50, 1, 500)
    return web.json_response(
        {"items": [entry_view(e) for e in await accounts.entries(account_id, limit)]}
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


@routes.get("/api/v1/accounts/{account}/cdrs")
async def cdrs(request: web.Request) -> web.Response:
    account_id = readable_account(request)
    flt = CdrFilter.from_query(account_id, request.query)
    limit = integer(request.query, "limit", 50, 1, 500)
    cursor = request.query.get("cursor")
    after = Keyset.decode(cursor) if cursor else None
    await request.app[SERVICES].accounts.get(account_id)
    async with request.app[POOL].acquire() as conn:
        rows, following = await page(conn, flt, limit, after)
    return web.json_response(
        {
            "filter": flt.as_dict(),
            "items": [_cdr_json(r) for r in rows],
            "next_cursor": following.encode() if following is not None else None,
        }
    )


async def _download(request: web.Request, flt: CdrFilter, token_id: str) -> web.StreamResponse:
    """On the export budget (own pool, a few per token), never the interactive pool."""
    gate = request.app[EXPORT_GATE]
    async with gate.connection(token_id) as conn:
        return await stream_csv(
            request,
            conn,
            flt,
            request.app[PANEL].csv_batch,
            gate,
            request.app[METRICS].csv_rows.inc,
        )


@routes.get("/api/v1/accounts/{account}/cdrs.csv")
async def cdrs_csv(request: web.Request) -> web.StreamResponse:
    account_id = readable_account(request)
    flt = CdrFilter.from_query(account_id, request.query)
    await request.app[SERVICES].accounts.get(account_id)
    return await _download(request, flt, principal(request).id)


def _exports(request: web.Request) -> Exports:
    return Exports(
        request.app[REDIS], request.app[SETTINGS].keyspace.prefix, request.app[PANEL].download_ttl_s
    )


@routes.post("/api/v1/accounts/{account}/cdrs/exports")
async def create_export(request: web.Request) -> web.Response:
    account_id = readable_account(request)
    flt = CdrFilter.from_query(account_id, request.query)
    await request.app[SERVICES].accounts.get(account_id)
    ticket = await _exports(request).issue(flt, principal(request).id)
    return web.json_response(
        {
            "url": f"/api/v1/exports/{ticket}",
            "expires_in_s": request.app[PANEL].download_ttl_s,
            "filter": flt.as_dict(),
        },
        status=201,
    )


@routes.get("/api/v1/exports/{ticket}", name="public:export")
async def export(request: web.Request) -> web.StreamResponse:
    ticket = request.match_info["ticket"]
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
    return await _download(request, found.filter, found.token_id)
