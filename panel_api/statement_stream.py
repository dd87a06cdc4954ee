"""A month's statement streamed as JSON: totals first (computed by PostgreSQL), then the
calls from a server-side cursor a batch at a time, in one read-only snapshot.

The document is the one billing.listing builds (same keys, same call views), but neither
the process nor the event loop ever holds more than a batch of it: a customer with 80k
calls gets them without stalling anyone else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from billing.listing import BILLED, Totals
from billing.period import Period
from core.pg import Conn
from panel_api.errors import STREAMING
from panel_api.export_gate import ClientStalled, ExportGate, pump
from panel_api.metrics import METRICS
from rating.accounts import Account
from rating.money import format_micro

BATCH = 200  # calls per batch: a couple of ms of work between two turns of the event loop

# per class and prefix; a prefix is named after the destination of its first call
_GROUPS = f"""
select number_class, coalesce(nullif(prefix, ''), '-') as prefix_key,
       count(*) as n, sum(billsec) as billsec, sum(billed_charge) as cost
from ({BILLED}) b group by 1, 2
"""
_NAMES = f"""
select distinct on (coalesce(nullif(prefix, ''), '-'))
       coalesce(nullif(prefix, ''), '-') as prefix_key, rate_name
from ({BILLED}) b
order by coalesce(nullif(prefix, ''), '-'), started_at, call_id
"""


def _view(row: Any, zone: ZoneInfo) -> dict[str, Any]:
    """billing.listing.call_view straight from the row (no Cdr object: a third of the work);
    the tests hold the two to the same output."""
    return {
        "call_id": row["call_id"],
        "started_at": row["started_at"].astimezone(zone).isoformat(),
        "caller": row["caller"],
        "number": row["e164"] or row["raw"],
        "class": row["number_class"],
        "prefix": row["prefix"],
        "destination": row["rate_name"],
        "direction": row["direction"],
        "billsec": row["billsec"],
        "cost": format_micro(row["billed_charge"]),
    }


def _add(totals: Totals, count: int, billsec: int, cost: int) -> None:
    totals.count += count
    totals.billsec += billsec
    totals.cost += cost


async def _head(
    conn: Conn, account: Account, period: Period, start: datetime, end: datetime
) -> dict[str, Any]:
    names = {
        r["prefix_key"]: r["rate_name"] for r in await conn.fetch(_NAMES, account.id, start, end)
    }
    total, by_class, by_prefix = Totals(), dict[str, Totals](), dict[str, Totals]()
    for r in await conn.fetch(_GROUPS, account.id, start, end):
        numbers = (int(r["n"]), int(r["billsec"]), int(r["cost"]))
        _add(total, *numbers)
        _add(by_class.setdefault(r["number_class"], Totals()), *numbers)
        key = r["prefix_key"]
        _add(by_prefix.setdefault(key, Totals(names.get(key) or "")), *numbers)
    return {
        "account": account.id,
        "period": str(period),
        "timezone": account.timezone,
        "currency": account.currency,
        "total": total.as_dict(),
        "by_class": {k: v.as_dict() for k, v in sorted(by_class.items())},
        "by_prefix": {k: v.as_dict() for k, v in sorted(by_prefix.items())},
    }


async def statement_totals(conn: Conn, account: Account, period: Period) -> dict[str, Any]:
    """The statement without its calls (`calls` empty): the totals alone, one snapshot."""
    start, end = period.bounds(account.timezone)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return {**await _head(conn, account, period, start, end), "calls": []}


async def stream_statement(
    request: web.Request, conn: Conn, account: Account, period: Period, gate: ExportGate
) -> web.StreamResponse:
    start, end = period.bounds(account.timezone)
    zone = ZoneInfo(account.timezone)
    response = web.StreamResponse(
        headers={"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
    )

    def render(rows: Sequence[Any], is_first: bool) -> bytes:
        text = json.dumps([_view(r, zone) for r in rows])[1:-1]
        return (text if is_first else ", " + text).encode()

    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            head = json.dumps(await _head(conn, account, period, start, end))
            cursor = await conn.cursor(BILLED, account.id, start, end)
            rows = await cursor.fetch(BATCH)  # before the status line: a failure is a 503
            request[STREAMING] = True
            gate.prepare(request)
            await response.prepare(request)
            await gate.send(request, response, (head[:-1] + ', "calls": [').encode())
            await pump(request, response, gate, cursor, rows, BATCH, render)
            await gate.send(request, response, b"]}")
    except ClientStalled as exc:
        request.app[METRICS].downloads_stalled.inc()
        gate.cut_off(request, exc)
        return response  # aborted: aiohttp's write_eof after this fails quietly
    await response.write_eof()
    return response
