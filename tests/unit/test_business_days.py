"""Polish business days (the `holidays` package's calendar): deadlines that fall on a
Saturday, Sunday or public holiday move to the next business day. Dates are pinned."""

from __future__ import annotations

from datetime import date

import pytest

from billing.business_days import add_business_days, is_business_day, next_business_day


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (date(2026, 12, 23), True),  # Wednesday
        (date(2026, 12, 24), False),  # Christmas Eve: a public holiday from 2025
        (date(2026, 12, 25), False),
        (date(2026, 12, 26), False),  # Saturday and the second day of Christmas
        (date(2026, 11, 11), False),  # Independence Day
        (date(2027, 3, 29), False),  # Easter Monday 2027
        (date(2027, 5, 27), False),  # Corpus Christi 2027
        (date(2027, 5, 28), True),
        (date(2026, 12, 5), False),  # a Saturday
    ],
)
def test_business_days(day: date, business: bool) -> None:
    assert is_business_day(day) is business


def test_a_deadline_on_a_day_off_moves_to_the_next_business_day() -> None:
    assert next_business_day(date(2026, 12, 23)) == date(2026, 12, 23)
    assert next_business_day(date(2026, 12, 24)) == date(2026, 12, 28)  # Thu-Sun off
    assert next_business_day(date(2027, 1, 1)) == date(2027, 1, 4)
    assert next_business_day(date(2027, 1, 6)) == date(2027, 1, 7)  # Epiphany


def test_counting_business_days() -> None:
    # activation on Wednesday 23 December: Thu-Sun are days off
    assert add_business_days(date(2026, 12, 23), 1) == date(2026, 12, 28)
    assert add_business_days(date(2026, 12, 23), 2) == date(2026, 12, 29)
    # a Friday: Monday and Tuesday
    assert add_business_days(date(2026, 12, 4), 2) == date(2026, 12, 8)
    assert add_business_days(date(2026, 12, 5), 0) == date(2026, 12, 7)
    with pytest.raises(ValueError, match="negative"):
        add_business_days(date(2026, 12, 4), -1)
