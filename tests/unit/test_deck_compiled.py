"""The compiled form of a deck (what Redis serves and PostgreSQL keeps with each version)
rates exactly like the deck it came from, and is read without building a row object per
rate: prefixes are built when a lookup first needs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rating.deck import CompiledPrefixes, Deck, deck_from_json, deck_to_json, load_deck
from rating.tariff import rate_call

HEADER = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
MANIFEST = """name = "t"
currency = "PLN"
rates = "rates.csv"
[bands]
day = ["mon-fri 08:00-18:00"]
night = ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"]
"""
RATES = (
    HEADER
    + "48,Poland,0,0.10,60,60,0,*\n"
    + "4860,Mobile day,0.05,0.20,60,30,0,day\n"
    + "4860,Mobile day,0,0.20,60,6,30,day\n"
    + "4860,Mobile night,0,0.08,60,60,0,night\n"
    + "4822,Warsaw,0,0.09,60,1,0,*\n"
)


def deck(tmp: Path) -> Deck:
    (tmp / "rates.csv").write_text(RATES)
    (tmp / "deck.toml").write_text(MANIFEST)
    return load_deck(tmp / "deck.toml")


def test_a_compiled_deck_rates_like_its_source(tmp_path: Path) -> None:
    source = deck(tmp_path)
    compiled = deck_from_json(deck_to_json(source))
    assert isinstance(compiled.prefixes, CompiledPrefixes)
    assert compiled.max_prefix_len == source.max_prefix_len == 4
    # a Monday 17:59:30 in Warsaw: the call crosses from the day band into the night one
    at = datetime(2026, 11, 23, 16, 59, 30, tzinfo=UTC)
    for digits in ("48601234567", "48221234567", "48121234567", "49301234567"):
        assert compiled.lookup(digits) == source.lookup(digits), digits
        if source.lookup(digits) is not None:
            assert rate_call(compiled, digits, at, 95) == rate_call(source, digits, at, 95)
    assert compiled.rows == source.rows and len(compiled.rows) == len(source.rows) == 5
    assert set(compiled.prefixes) == set(source.prefixes) and len(compiled.prefixes) == 3
    assert compiled.prefixes["4860"].name == "Mobile day"


def test_the_compiled_form_is_lists_per_prefix(tmp_path: Path) -> None:
    data = json.loads(deck_to_json(deck(tmp_path), version=7))
    assert data["version"] == 7 and data["format"] == 2 and data["rows"] == 5
    # one JSON text per prefix: loading a deck parses nothing per row
    assert json.loads(data["prefixes"]["4822"]) == [[6, "Warsaw", 0, 90_000, 60, 1, 0, "*"]]


def test_the_earlier_form_is_still_read(tmp_path: Path) -> None:
    """Redis keeps what an earlier version compiled until the deck changes."""
    source = deck(tmp_path)
    earlier = json.dumps(
        {
            **source.manifest(),
            "version": 3,
            "sha256": source.sha256,
            "rows": [r.as_dict() for r in source.rows],
        }
    )
    read = deck_from_json(earlier)
    assert read.version == 3 and read.rows == source.rows
    assert read.lookup("48601234567") == source.lookup("48601234567")
