"""CDRs as a CSV download, streamed from a server-side cursor in constant memory.

Rows are fetched in batches from one read-only snapshot and written as they come; nothing
holds more than one batch, whether the download has ten rows or ten million. PostgreSQL
renders each row as one finished CSV line (text fields always quoted, RFC 4180): Python then
only joins and sends them, which is what lets a download approach COPY's speed.

Text cells are defused against formula injection by the rule every export shares
(cdr.csv_safe: = + - @ first, also after leading blanks, or a leading tab/CR). Values
match the JSON listing's: times as Python's isoformat() in UTC, money as format_micro."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from cdr.csv_safe import sql_defused
from core.pg import Conn
from panel_api.cdr_query import FIELDS, CdrFilter, export_sql
from panel_api.errors import STREAMING
from panel_api.export_gate import ClientStalled, ExportGate, pump
from panel_api.metrics import METRICS

HEADER = ",".join(name for name, _ in FIELDS) + "\r\n"


def _text(column: str) -> str:
    return f"""'"' || replace({sql_defused(column)}, '"', '""') || '"'"""


def _time(column: str) -> str:
    """isoformat() of the UTC instant: no fraction when it is whole seconds."""
    utc = f"({column} at time zone 'UTC')"
    return (
        f"case when {column} is null then ''"
        f" when date_part('microseconds', {column})::int % 1000000 = 0"
        f""" then to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00'"""
        f""" else to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00' end"""
    )


def _money(column: str) -> str:
    """format_micro: 4 decimals, more only when the amount has them."""
    scale = f"case when {column} % 100 = 0 then 4 when {column} % 10 = 0 then 5 else 6 end"
    return f"round({column}::numeric / 1000000, {scale})::text"


def _cell(name: str, column: str) -> str:
    if name.endswith("_at"):
        return _time(column)
    if name == "cost":
        return _money(column)
    if name == "billsec":
        return f"{column}::text"
    return _text(column)


LINE = " || ',' || ".join(_cell(n, c) for n, c in FIELDS) + " || E'\\r\\n'"


def filename(flt: CdrFilter) -> str:
    return f"cdrs-{flt.account}-{flt.start:%Y%m%d}-{flt.end:%Y%m%d}.csv"


async def stream_csv(
    request: web.Request,
    conn: Conn,
    flt: CdrFilter,
    batch: int,
    gate: ExportGate,
    on_rows: Callable[[int], None] = lambda n: None,
) -> web.StreamResponse:
    sql, args = export_sql(flt, LINE)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename(flt)}"',
            "Cache-Control": "no-store",
        }
    )
    try:
        # one snapshot for the whole download: rows written meanwhile neither appear nor vanish
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(sql, *args)
            lines = await cursor.fetch(batch)  # before the status line: a failure here is a 503
            request[STREAMING] = True
            gate.prepare(request)
            await response.prepare(request)
            await gate.send(request, response, HEADER.encode())

            def render(rows: Sequence[Any], is_first: bool) -> bytes:
                on_rows(len(rows))
                return "".join([row[0] for row in rows]).encode()

            await pump(request, response, gate, cursor, lines, batch, render)
    except ClientStalled as exc:
        request.app[METRICS].downloads_stalled.inc()
        gate.cut_off(request, exc)
        return response  # aborted: aiohttp's write_eof after this fails quietly
    await response.write_eof()
    return response
