"""`stream_row` and `raw_row`, the CDR writer's fast conversions, give exactly what
`Cdr.from_stream` gives (the row, or the BadCdr naming the field) for every entry.

`raw_row` reads the entry as the Redis client returns it (bytes); when it declines (None),
the writer decodes the entry and takes `stream_row`, so that pair is what is compared."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.model import (
    COLUMNS,
    BadCdr,
    Cdr,
    raw_row,
    row_identity,
    row_is_final,
    stream_row,
)

GOOD = {
    "call_id": "1733000000.42",
    "account": "alice",
    "state": "finished",
    "decision": "ALLOW",
    "reason": "OK",
    "granted": "300",
    "reserved": "950000",
    "raw": "0601234567",
    "e164": "+48601234567",
    "class": "mobile",
    "caller": "600100200",
    "switch": "pbx-a",
    "prefix": "4860",
    "rate_name": "Poland mobile",
    "deck": "retail",
    "deck_version": "3",
    "currency": "PLN",
    "authorized_at": "1764000000000",
    "answered_at": "1764000002000",
    "ended_at": "1764000062000",
    "answered": "1",
    "billsec": "60",
    "rated_cost": "190000",
    "cost": "190000",
    "disposition": "ANSWER",
    "hangup_cause": "16",
    "prior_state": "open",
}
ODD_VALUES = [
    "",
    "0",
    "1",
    "2",
    "-1",
    "x",
    "\x00",
    "a\x00b",
    "٣",  # a digit, not ASCII
    "9" * 20,
    str(2**31),
    str(2**31 - 1),
    str(2**63),
    "946684799999",  # the last millisecond before 2000
    "946684800000",
    "7258118400000",  # 2200-01-01: too late
    "expired",
    "denied",
    "bad id",
    "x" * 1025,
    "x" * 1024,
]


def outcome(entry: dict[str, str], convert: Any) -> Any:
    try:
        return ("row", convert(entry))
    except BadCdr as exc:
        return ("error", str(exc))


def slow(entry: dict[str, str]) -> Any:
    return Cdr.from_stream(entry, "5-0").row()


def fast(entry: dict[str, str]) -> Any:
    return stream_row(entry, "5-0")


def via_raw(entry: dict[str, str]) -> Any:
    """The writer's path: `raw_row` on the bytes (fields in reverse order, to show the order
    does not matter), else `stream_row` on the decoded entry."""
    raw = {k.encode(): v.encode() for k, v in reversed(entry.items())}
    row = raw_row(raw, "5-0")
    return stream_row(entry, "5-0") if row is None else row


def test_a_good_entry_is_the_same_row() -> None:
    row = stream_row(GOOD, "7-1")
    cdr = Cdr.from_stream(GOOD, "7-1")
    assert row == cdr.row() and len(row) == len(COLUMNS)
    assert row_identity(row) == cdr.identity and row_is_final(row)


@pytest.mark.parametrize("field", sorted({*GOOD, "detail", "emergency", "unauthorized", "rdnis"}))
@pytest.mark.parametrize("value", ODD_VALUES)
def test_each_field_with_odd_values(field: str, value: str) -> None:
    entry = {**GOOD, field: value}
    assert outcome(entry, fast) == outcome(entry, slow)
    assert outcome(entry, via_raw) == outcome(entry, slow)


def test_missing_fields() -> None:
    for field in GOOD:
        entry = {k: v for k, v in GOOD.items() if k != field}
        assert outcome(entry, fast) == outcome(entry, slow), field
        assert outcome(entry, via_raw) == outcome(entry, slow), field


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(GOOD)),
        st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=12)),
        max_size=6,
    )
)
def test_any_mix(changes: dict[str, str]) -> None:
    entry = {**GOOD, **changes}
    assert outcome(entry, fast) == outcome(entry, slow)
    assert outcome(entry, via_raw) == outcome(entry, slow)


def test_raw_row_takes_the_fast_path_for_good_entries() -> None:
    raw = {k.encode(): v.encode() for k, v in GOOD.items()}
    assert raw_row(raw, "7-1") == Cdr.from_stream(GOOD, "7-1").row()
    # extra fields the ledger may add later are ignored, as Cdr.from_stream ignores them
    assert raw_row({**raw, b"later": b"x"}, "7-1") == Cdr.from_stream(GOOD, "7-1").row()


def test_raw_row_declines_what_needs_the_careful_path() -> None:
    raw = {k.encode(): v.encode() for k, v in GOOD.items()}
    assert raw_row({**raw, b"caller": b"\xff\xfe"}, "7-1") is None  # not UTF-8
    assert raw_row({**raw, b"\xff": b"1"}, "7-1") is None  # a field name not UTF-8
    assert raw_row({**raw, b"detail": b"a\x00b"}, "7-1") is None  # a NUL
    assert raw_row({**raw, b"billsec": b"x"}, "7-1") is None  # a check failing
    assert raw_row(GOOD, "7-1") is None  # str, from a client that decodes
