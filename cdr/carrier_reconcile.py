"""A carrier's CDR file against ours: calls missing on either side, and duration and cost
differences beyond a tolerance (like `cdr reconcile` does with Asterisk's CDRs).

The file is CSV with a header; which columns hold the called number, the start (answer)
time, the billed seconds and the cost is configurable (carriers name them differently). A
carrier's call matches our answered call to the same number through that carrier that
started nearest in time, within a window."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.pg import Conn
from rating.carriers import CSV_FIELDS, CarrierError, csv_columns
from rating.money import MoneyError, format_micro, parse_micro
from rating.numbers import InvalidNumber, normalise

FIELDS = CSV_FIELDS


class CarrierFileError(ValueError):
    """Bad carrier CDR input: names the file and line, or the option."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


def columns(spec: str, stored: str = "") -> dict[str, str]:
    """'number=Called,start=Date,seconds=Dur,cost=Amount' -> our field -> their column: the
    flag's fields over the carrier's stored mapping over our own names (cost may be left
    out of the file)."""
    try:
        return {**{f: f for f in FIELDS}, **csv_columns(stored), **csv_columns(spec, "--columns")}
    except CarrierError as exc:
        raise CarrierFileError(exc.field, exc.why) from None


@dataclass(frozen=True, slots=True)
class TheirCall:
    line: int
    e164: str
    start: datetime
    seconds: int
    cost: int | None  # micro-units; None when the file has no cost column


def read_calls(path: str, mapping: Mapping[str, str], country: str, tz: str) -> list[TheirCall]:
    """Every call of the file, checked whole: the first bad line is the error."""
    zone = ZoneInfo(tz)
    try:
        with Path(path).open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for field in ("number", "start", "seconds"):
                if mapping[field] not in header:
                    raise CarrierFileError(f"{path}:1", f"no column {mapping[field]!r} ({field})")
            priced = mapping["cost"] in header
            return [_call(path, n, row, mapping, priced, country, zone)
                    for n, row in enumerate(reader, 2)]  # fmt: skip
    except OSError as exc:
        raise CarrierFileError(path, exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise CarrierFileError(path, "not UTF-8 text") from None


def _call(path: str, n: int, row: Mapping[str, str | None], mapping: Mapping[str, str],
          priced: bool, country: str, zone: ZoneInfo) -> TheirCall:  # fmt: skip
    def cell(field: str) -> str:
        return (row.get(mapping[field]) or "").strip()

    where = f"{path}:{n}"
    try:
        e164 = normalise(cell("number"), country).e164
    except InvalidNumber as exc:
        raise CarrierFileError(where, f"{mapping['number']}: {exc}") from None
    try:
        start = datetime.fromisoformat(cell("start"))
    except ValueError:
        raise CarrierFileError(where, f"{mapping['start']}: not an ISO 8601 time") from None
    seconds = cell("seconds")
    if not seconds.isascii() or not seconds.isdigit():
        raise CarrierFileError(where, f"{mapping['seconds']}: whole seconds, not {seconds!r}")
    cost = None
    if priced:
        try:
            cost = parse_micro(cell("cost"))
        except MoneyError as exc:
            raise CarrierFileError(where, f"{mapping['cost']}: {exc}") from None
    start = start if start.tzinfo else start.replace(tzinfo=zone)
    return TheirCall(n, e164, start.astimezone(UTC), int(seconds), cost)


async def carrier_reconcile(
    conn: Conn,
    carrier: str,
    theirs: Sequence[TheirCall],
    start: datetime,
    end: datetime,
    *,
    window_s: int = 10,
    tolerance_s: int = 1,
    tolerance_cost: int = 100,
) -> dict[str, Any]:
    rows = await conn.fetch(
        "select call_id, e164, answered_at, billsec, buy_cost from cdrs where carrier = $1"
        " and answered and state = 'finished' and started_at >= $2 and started_at < $3"
        " order by answered_at",
        carrier,
        start - timedelta(seconds=window_s),
        end,
    )
    ours = [dict(r) for r in rows]
    used: set[str] = set()
    differences: list[dict[str, Any]] = []
    for call in theirs:
        match = _nearest(call, ours, used, window_s)
        if match is None:
            differences.append({"kind": "missing_in_tollgate", "line": call.line,
                                "number": call.e164, "start": call.start.isoformat()})  # fmt: skip
            continue
        used.add(match["call_id"])
        if abs(match["billsec"] - call.seconds) > tolerance_s:
            differences.append({"kind": "duration", "line": call.line, "call_id": match["call_id"],
                                "ours": match["billsec"], "theirs": call.seconds})  # fmt: skip
        if call.cost is not None and abs(match["buy_cost"] - call.cost) > tolerance_cost:
            differences.append({"kind": "cost", "line": call.line, "call_id": match["call_id"],
                                "ours": format_micro(match["buy_cost"]),
                                "theirs": format_micro(call.cost)})  # fmt: skip
    for r in ours:
        if r["call_id"] not in used and r["answered_at"] >= start:
            at = r["answered_at"].isoformat()
            differences.append({"kind": "missing_at_carrier", "call_id": r["call_id"],
                                "number": r["e164"], "start": at})  # fmt: skip
    return {"carrier": carrier, "theirs": len(theirs), "ours": len(ours),
            "matched": len(used), "differences": differences}  # fmt: skip


def _nearest(
    call: TheirCall, ours: Sequence[dict[str, Any]], used: set[str], window_s: int
) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    gap = timedelta(seconds=window_s)
    for r in ours:
        if r["e164"] != call.e164 or r["call_id"] in used or r["answered_at"] is None:
            continue
        off = abs(r["answered_at"] - call.start)
        if off <= gap:
            best, gap = r, off
    return best
