"""CDRs as a CSV download, streamed from a server-side cursor in constant memory.

Rows are fetched in batches from one read-only snapshot and written as they come; nothing
holds more than one batch, whether the download has ten rows or ten million. PostgreSQL
renders each row as one finished CSV line (text fields always quoted, RFC 4180): Python then
only joins and sends them, which is what lets a download approach COPY's speed.

One format in two dialects (cdr.export_format, which `bill listing --csv` writes too),
rendered here as SQL: times in the account's zone (the transaction's TimeZone), to the second.

Text cells are defused against formula injection by the rule every export shares
(cdr.csv_safe: = + - @ first, also after leading blanks, or a leading tab/CR; an E.164
number is not a formula)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cdr.csv_safe import sql_defused
from cdr.export_format import STANDARD, Dialect
from core.pg import Conn
from panel_api.cdr_query import FIELDS, CdrFilter, export_sql
from panel_api.errors import STREAMING
from panel_api.export_gate import ClientStalled, ExportGate, pump
from panel_api.metrics import METRICS

# to_char formats, in the session's (the account's) time zone
_TIMES = {True: 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM', False: "YYYY-MM-DD HH24:MI:SS"}


def line_sql(dialect: Dialect, cost: str = "cost") -> str:
    """The SQL expression of one CSV line, byte for byte export_format.line's; `cost` is
    the column the cost comes from (a statement's: the re-rated charge)."""
    joint = f" || '{dialect.delimiter}' || "
    columns = [(n, cost if n == "cost" else c) for n, c in FIELDS]
    return joint.join(_cell(dialect, n, c) for n, c in columns) + " || E'\\r\\n'"


def _cell(dialect: Dialect, name: str, column: str) -> str:
    if name.endswith("_at"):
        return f"coalesce(to_char({column}, '{_TIMES[dialect.iso_times]}'), '')"
    if name == "cost":
        return _money(column, dialect.decimal)
    if name == "billsec":
        return f"{column}::text"
    return f"""'"' || replace({sql_defused(column)}, '"', '""') || '"'"""


def _money(column: str, decimal: str) -> str:
    """format_micro (4 decimals, more only when the amount has them), with `decimal`."""
    scale = f"case when {column} % 100 = 0 then 4 when {column} % 10 = 0 then 5 else 6 end"
    text = f"round({column}::numeric / 1000000, {scale})::text"
    return text if decimal == "." else f"replace({text}, '.', '{decimal}')"


def filename(flt: CdrFilter) -> str:
    """Named after the local days chosen, both inclusive: 1-30 November is ...-20261130."""
    return f"cdrs-{flt.account}-{flt.first_day():%Y%m%d}-{flt.last_day():%Y%m%d}.csv"


@dataclass(frozen=True, slots=True)
class Export:
    """What a download sends: one CSV line per row of `sql`, in `zone`'s times."""

    sql: str
    args: list[Any]
    zone: str
    filename: str
    dialect: Dialect = STANDARD


def cdr_export(flt: CdrFilter, dialect: Dialect = STANDARD) -> Export:
    sql, args = export_sql(flt, line_sql(dialect))
    return Export(sql, args, flt.zone, filename(flt), dialect)


async def stream_csv(
    request: web.Request,
    conn: Conn,
    export: Export,
    batch: int,
    gate: ExportGate,
    on_rows: Callable[[int], None] = lambda n: None,
) -> web.StreamResponse:
    sql, args, dialect = export.sql, export.args, export.dialect
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
        }
    )
    try:
        # one snapshot for the whole download: rows written meanwhile neither appear nor vanish
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # to_char writes times in the session's zone: the account's, for this transaction
            await conn.execute("select set_config('TimeZone', $1, true)", export.zone)
            cursor = await conn.cursor(sql, *args)
            lines = await cursor.fetch(batch)  # before the status line: a failure here is a 503
            request[STREAMING] = True
            gate.prepare(request)
            await response.prepare(request)
            await gate.send(request, response, dialect.header().encode())

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
