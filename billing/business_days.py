"""Business days in Poland: what a deadline moves to when it falls on a day off.

Art. 115 of the Civil Code: a deadline that ends on a statutory public holiday or on a
Saturday ends on the next day that is neither; the terms' "business days" (a pro-forma
within 2 business days of activation) count the same days. The public holidays come from
the `holidays` package (kept up to date with the statutes, e.g. Christmas Eve from 2025),
looked up once per year. The date is always an argument: nothing here reads the clock."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("PL", years=year))


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in public_holidays(day.year)


@lru_cache(maxsize=1024)  # a bill run moves the same few due dates for every document
def next_business_day(day: date) -> date:
    """`day` itself when it is a business day, else the first business day after it."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, count: int) -> date:
    """The `count`-th business day after `day` (count >= 0; 0 is `day` moved forward)."""
    if count < 0:
        raise ValueError("count must not be negative")
    day = next_business_day(day) if count == 0 else day
    for _ in range(count):
        day = next_business_day(day + timedelta(days=1))
    return day
