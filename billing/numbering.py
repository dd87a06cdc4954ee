"""Document numbers: PREFIX/YYYY/MM/NNNNNN, gapless within a series (prefix and month).

The counter row is incremented in the issuing transaction and stays locked until it ends:
a concurrent issuer waits, and a rollback gives the number back, so no gap appears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core.pg import Conn


@dataclass(frozen=True, slots=True)
class Number:
    series: str
    seq: int

    def __str__(self) -> str:
        return f"{self.series}/{self.seq:06d}"


def series_of(prefix: str, issue_date: date) -> str:
    return f"{prefix}/{issue_date.year:04d}/{issue_date.month:02d}"


async def next_number(conn: Conn, prefix: str, issue_date: date) -> Number:
    """Take the next number of the series; call inside the transaction that issues it."""
    series = series_of(prefix, issue_date)
    await conn.execute(
        "insert into document_series (series, last_seq) values ($1, 0)"
        " on conflict (series) do nothing",
        series,
    )
    seq = await conn.fetchval(
        "update document_series set last_seq = last_seq + 1 where series = $1 returning last_seq",
        series,
    )
    return Number(series, int(seq))
