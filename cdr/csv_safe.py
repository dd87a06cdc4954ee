"""CSV for spreadsheets: the one rule against formula injection, for every export.

Spreadsheets run a cell as a formula when it starts with = + - @, and several also when
blanks come first (' =1+1', '\\n=1+1'), or when it starts with a tab or CR. Callers and
dialled strings come from outside, so such a cell gets a leading apostrophe, which
spreadsheets display as text (OWASP's advice against CSV injection).

One exception: a `+` followed by digits only and nothing else ("+48601234567", an E.164
number) is a number to every spreadsheet, never a formula, so it is left as it is; the moment
anything else follows ("+cmd|' /c calc'!A1", "+1+1", "+48 601"), the cell is defused.

The same rule exists twice, once in Python (`defuse`, `CsvWriter`: the call listing) and
once as SQL (`sql_defused`: the panel's CDR export, rendered by PostgreSQL); the tests hold
both to the same cases."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_CHARS = ("=", "+", "-", "@")
CONTROL_START = ("\t", "\r")
BLANKS = " \t\r\n"
NUMBER = re.compile(r"\+[0-9]+")  # the whole cell: a plus and ASCII digits, nothing else
SQL_NUMBER = "^\\+[0-9]+$"  # the same, as a PostgreSQL regular expression


def needs_defusing(value: str) -> bool:
    if NUMBER.fullmatch(value):
        return False
    return value[:1] in CONTROL_START or value.lstrip(BLANKS)[:1] in FORMULA_CHARS


def defuse(value: str) -> str:
    return "'" + value if needs_defusing(value) else value


def sql_defused(column: str) -> str:
    """The SQL expression of `defuse(column)` for a text column."""
    starts = ", ".join(f"'{c}'" for c in FORMULA_CHARS)
    return (
        f"case when {column} ~ '{SQL_NUMBER}' then {column}"
        f" when left({column}, 1) in (E'\\t', E'\\r')"
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
