"""Billing periods: calendar months in a time zone (the account's)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from billing.errors import BillingError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.match(text.strip())
        if not m or not 1 <= int(m[2]) <= 12 or int(m[1]) < 2000:
            raise BillingError("period", f"YYYY-MM expected, got {text!r}")
        return cls(int(m[1]), int(m[2]))

    @classmethod
    def of(cls, at: datetime, timezone: str) -> Period:
        """The period holding instant `at` on the wall clock of `timezone`."""
        local = at.astimezone(ZoneInfo(timezone))
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shifted(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants: local midnight of the 1st to that of the next 1st."""
        return _bounds(self, timezone)


# A bill run asks for every account's month; a few periods and zones make every answer.
@lru_cache(maxsize=1024)
def _bounds(period: Period, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    nxt = period.shifted(1)
    start = datetime(period.year, period.month, 1, tzinfo=zone)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def add_months(at: datetime, months: int, timezone: str) -> datetime:
    """The same wall-clock time `months` later in `timezone` (day clamped to the month's
    last: 30 November + 3 months = 28 February)."""
    local = at.astimezone(ZoneInfo(timezone))
    p = Period(local.year, local.month).shifted(months)
    day = min(local.day, p.last_day.day)
    return local.replace(year=p.year, month=p.month, day=day).astimezone(UTC)
