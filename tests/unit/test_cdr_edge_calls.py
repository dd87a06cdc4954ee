"""`edge_calls`: which calls of a batch the CDR writer looks for in the neighbouring month
(a twin across a month's edge), computed on integers; compared with the rule in datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cdr.ids import EDGE, edge_calls

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def neighbour(at: datetime) -> date | None:
    """The rule: within EDGE after a month's first instant, the month before; within EDGE
    (inclusive) before the next month's first instant, that month; else none."""
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    if at - first < EDGE:
        return (first - timedelta(days=1)).date().replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return nxt.date() if nxt - at <= EDGE else None


def us(at: datetime) -> int:
    return (at - EPOCH) // US


def expected(starts: list[datetime]) -> dict[date, list[tuple[str, str, str]]]:
    out: dict[date, list[tuple[str, str, str]]] = {}
    for n, at in enumerate(starts):
        month = neighbour(at)
        if month is not None:
            out.setdefault(month, []).append(("sw", "acct", f"c{n}"))
    return out


def calls(starts: list[datetime]) -> list[tuple[tuple[str, str, str], int]]:
    return [(("sw", "acct", f"c{n}"), us(at)) for n, at in enumerate(starts)]


def test_the_edges_of_a_month_and_a_year() -> None:
    edge = datetime(2027, 1, 1, tzinfo=UTC)
    starts = [
        edge - EDGE - US,  # just outside: no neighbour
        edge - EDGE,  # inclusive before the next month
        edge - US,
        edge,
        edge + EDGE - US,
        edge + EDGE,  # just outside after the first instant
        datetime(2026, 12, 15, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 30, tzinfo=UTC),  # months apart in one batch
    ]
    got = edge_calls(calls(starts))
    assert got == expected(starts)
    assert got[date(2027, 1, 1)] == [("sw", "acct", "c1"), ("sw", "acct", "c2")]
    assert got[date(2026, 12, 1)] == [("sw", "acct", "c3"), ("sw", "acct", "c4")]
    assert got[date(2026, 2, 1)] == [("sw", "acct", "c7")]
    assert edge_calls([]) == {}


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(2000, 1, 3),
            max_value=datetime(2199, 12, 1),
            timezones=st.just(UTC),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_same_as_the_rule_in_datetimes(starts: list[datetime]) -> None:
    assert edge_calls(calls(starts)) == expected(starts)
