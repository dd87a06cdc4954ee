from __future__ import annotations

from fractions import Fraction

import pytest

from rating.money import (
    MoneyError,
    Rounding,
    format_micro,
    parse_micro,
    parse_whole,
    round_micro,
)


@pytest.mark.parametrize(
    ("text", "micro"), [("1", 1_000_000), ("0.0123", 12_300), ("12.345678", 12_345_678), ("0", 0)]
)
def test_parse(text: str, micro: int) -> None:
    assert parse_micro(text) == micro


@pytest.mark.parametrize("text", ["", "abc", "1.2345678", "-1", "NaN", "Infinity", "1e400"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_micro(text)


def test_format_never_hides_precision() -> None:
    assert format_micro(12_340_000) == "12.3400"
    assert format_micro(12_345_678) == "12.345678"
    assert format_micro(-500) == "-0.0005"
    assert format_micro(-50) == "-0.00005"


@pytest.mark.parametrize(
    ("exact", "method", "expected"),
    [
        (Fraction(1001, 6), Rounding.UP, 200),  # 166.83 micro -> 0.0002
        (Fraction(1001, 6), Rounding.DOWN, 100),
        (Fraction(1001, 6), Rounding.HALF_UP, 200),
        (Fraction(149), Rounding.HALF_UP, 100),
        (Fraction(150), Rounding.HALF_UP, 200),
        (Fraction(300), Rounding.UP, 300),
    ],
)
def test_round_once(exact: Fraction, method: Rounding, expected: int) -> None:
    assert round_micro(exact, 4, method) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "1E3",
        "1_000",
        "\u0661\u0662",  # Arabic-Indic digits
        "\uff11",  # fullwidth 1
        "1e300000",
        "1e999999",
        "1.",
        ".5",
        "1..2",
        "1.2.3",
        "--5",
        "0x10",
        "1 000",
        "9" * 25,
    ],
)
def test_only_plain_decimals_are_amounts(text: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_micro(text, allow_negative=True)
    assert "plain decimal" in err.value.why


def test_signs_where_negatives_make_sense() -> None:
    assert parse_micro("-1.5", allow_negative=True) == -1_500_000
    assert parse_micro("+1.5") == 1_500_000
    assert parse_micro(" 2 ") == 2_000_000
    with pytest.raises(MoneyError):
        parse_micro("-1.5")


@pytest.mark.parametrize("text", ["1_000", "\u0661", "1e3", "--5", "", "5.0"])
def test_whole_numbers_are_ascii_digits(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_whole(text, low=-10, high=10_000)


def test_whole_numbers_in_range() -> None:
    assert parse_whole("-5", low=-10, high=10) == -5
    with pytest.raises(MoneyError):
        parse_whole("11", low=-10, high=10)
