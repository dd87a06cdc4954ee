"""`flat_text_row`, the CDR writer's conversion: what it gives is exactly `Cdr.from_stream`'s
row as text (`text_row`), or it declines and the careful path gives that row or the BadCdr
naming the field. PostgreSQL's side of the conversion is in test_cdr_text_copy.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.model import COLUMNS, STARTED_AT, Cdr, flat_text_row, stream_row, text_row
from tests.unit.test_cdr_stream_row import GOOD, ODD_VALUES, outcome

ODD_TEXTS = ["tab\there", "back\\slash", "line\nfeed", "\\N", "zażółć", "0007"]


NUMBERS = {
    i
    for i, c in enumerate(COLUMNS)
    if c.endswith("_at")
    or c in {"granted_s", "reserved", "deck_version", "billsec"}
    or c.endswith("cost")
}


def as_stored(row: Any) -> Any:
    """What PostgreSQL reads from a text row: numbers by value ("0007" is 7)."""
    return tuple(int(v) if i in NUMBERS and v is not None else v for i, v in enumerate(row))


def slow(entry: dict[str, str]) -> Any:
    return as_stored(text_row(Cdr.from_stream(entry, "5-0").row()))


def via_flat(entry: dict[str, str]) -> Any:
    """The writer's path: `flat_text_row` on the bytes as Redis sends them (fields in
    reverse order: the order does not matter), else the careful path."""
    flat = [x.encode() for k, v in reversed(entry.items()) for x in (k, v)]
    row = flat_text_row(flat, "5-0")
    return as_stored(text_row(stream_row(entry, "5-0")) if row is None else row)


def test_a_good_entry_is_taken_as_text() -> None:
    flat = [x.encode() for kv in GOOD.items() for x in kv]
    row = flat_text_row(flat, "7-1")
    assert row is not None and as_stored(row) == (*slow(GOOD)[:-1], "7-1")
    assert len(row) == len(COLUMNS) and row[STARTED_AT] == "1764000000000000"
    assert all(v is None or isinstance(v, str) for v in row)


def test_text_row_of_python_values() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cdr = Cdr("c1", at, "alice", "finished", at, billsec=7, answered=True, authorized_at=None)
    row = dict(zip(COLUMNS, text_row(cdr.row()), strict=True))
    assert row["started_at"] == "1767323045678901"  # microseconds are kept
    assert (row["billsec"], row["answered"], row["emergency"]) == ("7", "1", "0")
    assert row["authorized_at"] is None and row["detail"] == ""


@pytest.mark.parametrize("field", sorted({*GOOD, "detail", "emergency", "unauthorized", "rdnis"}))
@pytest.mark.parametrize("value", ODD_VALUES + ODD_TEXTS)
def test_each_field_with_odd_values(field: str, value: str) -> None:
    entry = {**GOOD, field: value}
    assert outcome(entry, via_flat) == outcome(entry, slow)


def test_missing_fields() -> None:
    for field in GOOD:
        entry = {k: v for k, v in GOOD.items() if k != field}
        assert outcome(entry, via_flat) == outcome(entry, slow), field


def test_declines_what_needs_the_careful_path() -> None:
    flat = [x.encode() for kv in GOOD.items() for x in kv]
    assert flat_text_row([*flat, b"caller", b"\xff"], "7-1") is None  # not UTF-8
    assert flat_text_row([*flat, b"billsec", b"2"], "7-1") is None  # a field twice
    assert flat_text_row([*flat, b"detail", b"a\x00b"], "7-1") is None  # a NUL
    assert flat_text_row([*flat, b"direction", b"x", b"state", b"gone"], "7-1") is None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(GOOD)),
        st.one_of(st.sampled_from(ODD_VALUES + ODD_TEXTS), st.text(max_size=12)),
        max_size=6,
    )
)
def test_any_mix(changes: dict[str, str]) -> None:
    entry = {**GOOD, **changes}
    assert outcome(entry, via_flat) == outcome(entry, slow)
