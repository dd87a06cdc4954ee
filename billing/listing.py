"""The call listing ("biling"): an account's calls in a period, with totals by destination
class and by prefix. A call belongs to the period holding its start in the account's zone.

Listed are the calls that were connected (finished and answered, emergency calls included
at no cost); refused and unanswered attempts cost nothing and are left out. A call's cost
is what it costs the customer now: its CDR's, or the last re-rating's applied to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from billing.period import Period
from cdr.export_format import STANDARD, Dialect, row, write
from cdr.model import Cdr
from core.pg import Conn
from rating.accounts import Account
from rating.money import format_micro

BILLED = """
select c.*, coalesce(r.rated, c.rated_cost) as billed_rated,
       coalesce(r.charge, c.cost) as billed_charge
from cdrs c
left join lateral (
    select rc.rated, rc.charge from rerate_calls rc join rerates x on x.id = rc.rerate_id
    where rc.call_id = c.call_id and rc.switch = c.switch and x.account = c.account
    order by rc.rerate_id desc limit 1
) r on true
where c.account = $1 and c.started_at >= $2 and c.started_at < $3
  and c.state = 'finished' and c.answered
order by c.started_at, c.call_id
"""


@dataclass(frozen=True, slots=True)
class BilledCall:
    cdr: Cdr
    rated: int  # the latest rating: the CDR's, or the last re-rating's
    charge: int  # what it costs the customer: the CDR's cost, or the last re-rating's


async def billed_calls(
    conn: Conn, account: str, start: datetime, end: datetime
) -> list[BilledCall]:
    """Connected calls of `account` that started in [start, end), oldest first."""
    rows = await conn.fetch(BILLED, account, start, end)
    return [BilledCall(Cdr.from_row(r), r["billed_rated"], r["billed_charge"]) for r in rows]


def call_view(call: BilledCall, zone: ZoneInfo) -> dict[str, Any]:
    """One call of a statement as the API shows it (start in the account's zone)."""
    c = call.cdr
    return {
        "call_id": c.call_id,
        "started_at": c.started_at.astimezone(zone).isoformat(),
        "caller": c.caller,
        "number": c.e164 or c.raw,
        "class": c.number_class,
        "prefix": c.prefix,
        "destination": c.rate_name,
        "direction": c.direction,
        "billsec": c.billsec,
        "cost": format_micro(call.charge),
    }


@dataclass(slots=True)
class Totals:
    name: str = ""
    count: int = 0
    billsec: int = 0
    cost: int = 0

    def add(self, call: BilledCall) -> None:
        self.count += 1
        self.billsec += call.cdr.billsec
        self.cost += call.charge

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        return {
            **out,
            "count": self.count,
            "billsec": self.billsec,
            "cost": format_micro(self.cost),
        }


@dataclass(frozen=True)
class Listing:
    account: str
    period: Period
    timezone: str
    currency: str
    calls: list[BilledCall]
    total: Totals = field(default_factory=Totals)
    by_class: dict[str, Totals] = field(default_factory=dict)
    by_prefix: dict[str, Totals] = field(default_factory=dict)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.timezone))

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "period": str(self.period),
            "timezone": self.timezone,
            "currency": self.currency,
            "total": self.total.as_dict(),
            "by_class": {k: v.as_dict() for k, v in sorted(self.by_class.items())},
            "by_prefix": {k: v.as_dict() for k, v in sorted(self.by_prefix.items())},
            "calls": [call_view(c, ZoneInfo(self.timezone)) for c in self.calls],
        }

    def to_csv(self, dialect: Dialect = STANDARD) -> str:
        """The calls in the customers' one CDR export format (cdr.export_format), with
        what each costs now (re-rated or not)."""
        zone = ZoneInfo(self.timezone)
        return write((row(c.cdr, zone, dialect, c.charge) for c in self.calls), dialect)


async def listing(conn: Conn, account: Account, period: Period) -> Listing:
    start, end = period.bounds(account.timezone)
    calls = await billed_calls(conn, account.id, start, end)
    result = Listing(account.id, period, account.timezone, account.currency, calls)
    for call in calls:
        result.total.add(call)
        result.by_class.setdefault(call.cdr.number_class, Totals()).add(call)
        prefix = call.cdr.prefix or "-"  # emergency and unrated calls have no prefix
        result.by_prefix.setdefault(prefix, Totals(call.cdr.rate_name)).add(call)
    return result
