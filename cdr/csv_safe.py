"""CSV for spreadsheets: the one rule against formula injection, for every export.

Spreadsheets run a cell as a formula when it starts with = + - @, and several also when
blanks come first (' =1+1', '\\n=1+1'), or when it starts with a tab or CR. Callers and
dialled strings come from outside, so such a cell gets a leading apostrophe, which
spreadsheets display as text (OWASP's advice against CSV injection).

The same rule exists twice, once in Python (`defuse`, `CsvWriter`: the call listing) and
once as SQL (`sql_defused`: the panel's CDR export, rendered by PostgreSQL); the tests hold
both to the same cases."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_CHARS = ("=", "+", "-", "@")
CONTROL_START = ("\t", "\r")
BLANKS = " \t\r\n"


def needs_defusing(value: str) -> bool:
    return value[:1] in CONTROL_START or value.lstrip(BLANKS)[:1] in FORMULA_CHARS


def defuse(value: str) -> str:
    return "'" + value if needs_defusing(value) else value


def sql_defused(column: str) -> str:
    """The SQL expression of `defuse(column)` for a text column."""
    starts = ", ".join(f"'{c}'" for c in FORMULA_CHARS)
    return (
        f"case when left({column}, 1) in (E'\\t', E'\\r')"
        f" or left(ltrim({column}, E' \\t\\r\\n'), 1) in ({starts})"
        f" then '''' || {column} else {column} end"
    )


def to_csv(header: Sequence[str], rows: Iterable[Sequence[str | int]]) -> str:
    """RFC 4180 text (CRLF), every text cell defused; numbers are written as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([defuse(c) if isinstance(c, str) else c for c in row])
    return out.getvalue()
