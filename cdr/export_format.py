"""The one CDR export format customers get, whoever writes it (the panel's download,
rendered by PostgreSQL; `bill listing --csv`, rendered here): the columns, their order and
the two dialects.

- "standard": RFC 4180 (`,`, CRLF, UTF-8), times in ISO 8601 with the offset of the
  account's zone (2026-11-01T00:30:00+01:00), money with a decimal point;
- "excel-pl": what Excel in Polish opens by double-click: `;`, a decimal comma, a UTF-8 BOM
  (without it Excel reads cp1250 and mangles diacritics), local times as
  "2026-11-01 00:30:00", which Excel takes for a date-time.
Times are to the second. Money is format_micro's (4 decimals, more only when the amount has
them). Text cells are defused against formula injection (cdr.csv_safe)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cdr.csv_safe import defuse
from cdr.model import Cdr
from rating.money import format_micro

# (name in the JSON listing and the CSV header, CDR column). One list for every writer.
# Times, billsec and cost are written bare; every other cell is text, always quoted.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("call_id", "call_id"),
    ("started_at", "started_at"),
    ("answered_at", "answered_at"),
    ("ended_at", "ended_at"),
    ("caller", "caller"),
    ("dialled", "raw"),
    ("number", "e164"),
    ("class", "number_class"),
    ("destination", "rate_name"),
    ("prefix", "prefix"),
    ("billsec", "billsec"),
    ("cost", "cost"),
    ("currency", "currency"),
    ("state", "state"),
    ("decision", "decision"),
    ("reason", "reason"),
    ("disposition", "disposition"),
    ("hangup_cause", "hangup_cause"),
)
BOM = "\ufeff"
BARE = frozenset({"started_at", "answered_at", "ended_at", "billsec", "cost"})


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    delimiter: str
    decimal: str
    bom: bool
    iso_times: bool  # ISO 8601 with offset; otherwise "YYYY-MM-DD HH:MM:SS" local

    def header(self) -> str:
        names = self.delimiter.join(name for name, _ in COLUMNS)
        return (BOM if self.bom else "") + names + "\r\n"

    def time(self, at: datetime | None, zone: ZoneInfo) -> str:
        if at is None:
            return ""
        local = at.astimezone(zone).replace(microsecond=0)
        return local.isoformat() if self.iso_times else local.strftime("%Y-%m-%d %H:%M:%S")

    def money(self, micro: int) -> str:
        return format_micro(micro).replace(".", self.decimal)


STANDARD = Dialect("standard", ",", ".", bom=False, iso_times=True)
EXCEL_PL = Dialect("excel-pl", ";", ",", bom=True, iso_times=False)
DIALECTS = {d.name: d for d in (STANDARD, EXCEL_PL)}


def row(cdr: Cdr, zone: ZoneInfo, dialect: Dialect, cost: int | None = None) -> list[str]:
    """One call's cells; `cost` overrides the CDR's (a re-rated charge)."""
    out: list[str] = []
    for name, column in COLUMNS:
        value = getattr(cdr, column)
        if name.endswith("_at"):
            out.append(dialect.time(value, zone))
        elif name == "cost":
            out.append(dialect.money(cdr.cost if cost is None else cost))
        elif name == "billsec":
            out.append(str(value))
        else:
            out.append(defuse(str(value)))
    return out


def line(cells: Sequence[str], dialect: Dialect) -> str:
    quoted = (
        cell if name in BARE else '"' + cell.replace('"', '""') + '"'
        for (name, _), cell in zip(COLUMNS, cells, strict=True)
    )
    return dialect.delimiter.join(quoted) + "\r\n"


def write(rows: Iterable[Sequence[str]], dialect: Dialect) -> str:
    """The whole file, byte for byte what the panel's download of the same calls is."""
    return dialect.header() + "".join(line(cells, dialect) for cells in rows)
