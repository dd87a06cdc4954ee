"""`copy_text`, the CDR writer's rows as COPY's text format: read back by COPY's rules it
gives the rows again, whatever the values hold (separators, backslashes, a literal \\N)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cdr.model import COLUMNS, Row
from cdr.store import copy_text

NULLABLE = {COLUMNS.index("authorized_at"), COLUMNS.index("answered_at")}
UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def read_back(data: bytes) -> list[Row]:
    """COPY FROM's text format, as PostgreSQL reads it (the escapes copy_text writes)."""
    lines = data.decode().split("\n")
    assert lines.pop() == ""
    rows = []
    for line in lines:
        cells = line.split("\t")
        assert len(cells) == len(COLUMNS)
        rows.append(
            tuple(
                None if c == "\\N" else re.sub(r"\\(.)", lambda m: UNESCAPE[m[1]], c)
                for c in cells
            )
        )
    return rows


def row(values: dict[int, str | None]) -> Row:
    return tuple(values.get(i, f"v{i}") for i in range(len(COLUMNS)))


def test_plain_rows_and_absent_times() -> None:
    rows = [row({}), row({i: None for i in NULLABLE}), row({3: "zażółć"})]
    data = copy_text(rows)
    assert read_back(data) == rows
    assert b"\\N" in data and data.count(b"\n") == 3


def test_odd_values_are_escaped() -> None:
    odd = ["tab\there", "back\\slash", "line\nfeed", "cr\r", "\\N", "\\.", "a\\tb"]
    rows = [row({}), *(row({i % len(COLUMNS): v}) for i, v in enumerate(odd))]
    assert read_back(copy_text(rows)) == rows


@given(
    st.lists(
        st.dictionaries(
            st.integers(0, len(COLUMNS) - 1),
            st.text(alphabet=st.sampled_from("ab\\\t\n\rN. ż"), max_size=6),
            max_size=4,
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_any_text_reads_back(changes: list[dict[int, str]], absent: bool) -> None:
    rows = [row({**c, **({i: None for i in NULLABLE} if absent else {})}) for c in changes]
    assert read_back(copy_text(rows)) == rows
