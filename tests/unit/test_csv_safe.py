"""The formula-injection rule every CSV export shares."""

from __future__ import annotations

import csv
import io

import pytest

from cdr.csv_safe import defuse, to_csv

# (cell, defused?) — the cases the SQL twin is held to as well (tests/integration)
CASES: list[tuple[str, bool]] = [
    ('=HYPERLINK("http://x","y")', True),
    ("+cmd|' /C calc'!A0", True),
    ("-2+3", True),
    ("@SUM(A1)", True),
    ("\tx", True),
    ("\rx", True),
    (" =1+1", True),
    ("  \t@SUM(A1)", True),
    ("\n=1+1", True),
    # an E.164 number (a plus, then digits, nothing else) is a number, not a formula
    ("+48601234567", False),
    ("+1", False),
    ("+", True),
    ("+48 601 234 567", True),
    ("+48601234567+1", True),
    ("+48601234567|cmd", True),
    ("+48601234567\n", True),
    (" +48601234567", True),
    ("+4860123456\uff17", True),  # a fullwidth digit is no ASCII digit
    ("+1+1", True),
    ("+cmd|' /C calc'!A0 48601234567", True),
    ("48221111111", False),
    ("alice", False),
    ("a = b", False),
    ("", False),
    ("   ", False),
    ("'=quoted", False),
]


@pytest.mark.parametrize(("cell", "defused"), CASES)
def test_defuse(cell: str, defused: bool) -> None:
    assert defuse(cell) == ("'" + cell if defused else cell)


def test_writer_defuses_text_and_keeps_numbers() -> None:
    text = to_csv(("caller", "billsec"), [(" =1+1", 60), ("bob", 5)])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["caller", "billsec"], ["' =1+1", "60"], ["bob", "5"]]
