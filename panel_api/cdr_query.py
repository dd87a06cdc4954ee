"""Which CDRs a listing or a download covers, and the SQL that reads them.

Listings are keyset-paginated, newest first: the cursor is the (started_at, call_id) of the
last row served, so a page costs the same however deep it is and rows arriving meanwhile
neither shift nor repeat pages. The started_at range always reaches the query, which lets
PostgreSQL skip the monthly partitions outside it."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import Field

from cdr import export_format
from cdr.model import CALL_ID
from core.pg import Conn
from panel_api.inputs import DAY_OR_MOMENT, EARLIEST, LATEST, NUMBER, Input, choice
from panel_api.params import invalid
from rating.numbers import NumberClass

DEFAULT_DAYS = 31

# (name in JSON and CSV, column): the export format's, so JSON and CSV cannot drift apart.
FIELDS = export_format.COLUMNS
COLUMNS = ", ".join(column for _, column in FIELDS)


@dataclass(frozen=True, slots=True)
class Keyset:
    started_at: datetime
    call_id: str

    def encode(self) -> str:
        raw = json.dumps([self.started_at.isoformat(), self.call_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Keyset:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at_text, call_id = json.loads(raw)
            at = datetime.fromisoformat(at_text)
            if at.tzinfo is None or not isinstance(call_id, str) or not CALL_ID.match(call_id):
                raise ValueError("not a cursor")
            if not EARLIEST <= at.astimezone(UTC) <= LATEST:
                raise ValueError("not a cursor")
        except (
            ValueError,
            TypeError,
            OverflowError,
            RecursionError,
            binascii.Error,
            UnicodeDecodeError,
        ):
            raise invalid("cursor", "not a cursor this API gave out") from None
        return cls(at, call_id)


@dataclass(frozen=True, slots=True)
class CdrFilter:
    account: str
    start: datetime
    end: datetime
    number_class: str | None = None
    number: str | None = None  # digits the called number (E.164) contains
    zone: str = "UTC"  # the account's time zone: days, local times in exports, file names

    def where(self) -> tuple[str, list[Any]]:
        """SQL conditions and their arguments ($1, $2, ...)."""
        args: list[Any] = [self.account, self.start, self.end]
        parts = ["account = $1", "started_at >= $2", "started_at < $3"]
        if self.number_class is not None:
            args.append(self.number_class)
            parts.append(f"number_class = ${len(args)}")
        if self.number is not None:
            args.append(self.number)
            parts.append(f"strpos(e164, ${len(args)}) > 0")
        return " and ".join(parts), args

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "class": self.number_class,
            "number": self.number,
            "timezone": self.zone,
        }

    def last_day(self) -> date:
        """The last local day the range covers (`end` is exclusive): what a person chose as
        the inclusive end date."""
        return (self.end - timedelta(microseconds=1)).astimezone(ZoneInfo(self.zone)).date()

    def first_day(self) -> date:
        return self.start.astimezone(ZoneInfo(self.zone)).date()


class CdrQuery(Input):
    """The query parameters that choose the calls of a listing or a download."""

    start: Annotated[date | None, DAY_OR_MOMENT] = Field(
        None,
        alias="from",
        description="Calls that started at or after this (default: 31 days before 'to'); a"
        " date is its midnight in the account's time zone",
    )
    end: Annotated[date | None, DAY_OR_MOMENT] = Field(
        None,
        alias="to",
        description="Calls that started before this (default: now); a date is its midnight"
        " in the account's time zone, so the day itself is not included",
    )
    number_class: Annotated[str | None, choice(c.value for c in NumberClass)] = Field(
        None, alias="class", description="Number class"
    )
    number: Annotated[str | None, NUMBER] = Field(
        None, description="Digits the called number (E.164) contains"
    )

    def filter(self, account: str, zone: str = "UTC", now: datetime | None = None) -> CdrFilter:
        """The calls chosen, with dates taken as midnights in `zone` (the account's)."""
        end = instant(self.end, zone) or now or datetime.now(UTC)
        start = instant(self.start, zone) or end - timedelta(days=DEFAULT_DAYS)
        if start >= end:
            raise invalid("from", "must be before 'to'")
        return CdrFilter(account, start, end, self.number_class, self.number, zone)


def instant(day_or_moment: date | None, zone: str) -> datetime | None:
    """A date-time as it is; a date as its midnight in `zone` (a statement's days are the
    account's local days, and so must a filter's be: a call at 00:30 in Warsaw is that day's
    call, though it is still the day before in UTC)."""
    if day_or_moment is None or isinstance(day_or_moment, datetime):
        return day_or_moment
    return datetime.combine(day_or_moment, time(), ZoneInfo(zone)).astimezone(UTC)


async def page(
    conn: Conn, flt: CdrFilter, limit: int, after: Keyset | None
) -> tuple[list[asyncpg.Record], Keyset | None]:
    """Up to `limit` CDRs, newest first, after the cursor; and the cursor of the next page."""
    where, args = flt.where()
    if after is not None:
        args += [after.started_at, after.call_id]
        n = len(args)
        # the plain bound lets the (account, started_at) index stop early; the row
        # comparison breaks ties between calls that started in the same microsecond
        where += f" and started_at <= ${n - 1} and (started_at, call_id) < (${n - 1}, ${n})"
    args.append(limit + 1)
    rows = await conn.fetch(
        f"select {COLUMNS} from cdrs where {where}"
        f" order by started_at desc, call_id desc limit ${len(args)}",
        *args,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Keyset(rows[-1]["started_at"], rows[-1]["call_id"]) if more else None
    return rows, cursor


def export_sql(flt: CdrFilter, select: str = COLUMNS) -> tuple[str, list[Any]]:
    """The download: every matching CDR, oldest first, as a statement reads."""
    where, args = flt.where()
    return f"select {select} from cdrs where {where} order by started_at, call_id", args


async def totals(conn: Conn, flt: CdrFilter) -> list[asyncpg.Record]:
    """Per number class: the calls, how many were answered, their seconds and cost."""
    where, args = flt.where()
    return await conn.fetch(
        "select number_class, count(*) as calls, count(*) filter (where answered) as answered,"
        " coalesce(sum(billsec), 0) as billsec, coalesce(sum(cost), 0) as cost"
        f" from cdrs where {where} group by number_class order by number_class",
        *args,
    )
