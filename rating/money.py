"""Money: integer micro-units everywhere; Decimal only at the edges (CSV, CLI, JSON)."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

MICRO = 1_000_000
# Amounts stay far below 2**53 so the ledger's Lua (doubles) adds them exactly.
MAX_MICRO = 10**9 * MICRO

# A plain decimal: ASCII digits, at most one dot with digits after it, an optional sign.
# Checked before Decimal() sees the text: an exponent ('1e300000' takes seconds to convert,
# '1e999999' overflows), '_' separators and non-ASCII digits never reach the conversion.
_PLAIN = re.compile(r"([+-]?)([0-9]{1,24})(?:\.([0-9]{1,24}))?", re.ASCII)
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)


class MoneyError(ValueError):
    """A money amount could not be parsed; `text` is what was given."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(f"{why}: {text!r}")
        self.text = text
        self.why = why


class Rounding(StrEnum):
    UP = "up"
    HALF_UP = "half-up"
    DOWN = "down"


def parse_decimal(text: str, *, allow_negative: bool = False) -> Decimal:
    """The one way numbers from outside (CLI, API, deck cells) become Decimal.

    Only plain decimals ('12', '-0.5', '+3.25') pass; the check is syntactic and bounded,
    so no input can make the conversion slow or raise anything but MoneyError."""
    raw = text.strip()
    if not raw:
        raise MoneyError(text, "empty amount")
    m = _PLAIN.fullmatch(raw)
    if m is None:
        raise MoneyError(
            text, "not a plain decimal number (ASCII digits, optionally one '.' and decimals)"
        )
    value = Decimal(raw)
    if m[1] == "-" and value != 0 and not allow_negative:
        raise MoneyError(text, "negative amount")
    return value


def parse_whole(text: str, *, low: int, high: int) -> int:
    """A whole number written in ASCII digits (no '_', no exponent), within [low, high]."""
    raw = text.strip()
    if _WHOLE.fullmatch(raw) is None:
        raise MoneyError(text, "not a whole number (ASCII digits only)")
    value = int(raw)
    if not low <= value <= high:
        raise MoneyError(text, f"must be between {low} and {high}")
    return value


def parse_micro(text: str, *, allow_negative: bool = False) -> int:
    """'12.34' -> 12_340_000. More than 6 decimals is an error, never silently rounded."""
    value = parse_decimal(text, allow_negative=allow_negative)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise MoneyError(text, "more than 6 decimal places")
    micro = int(value * MICRO)
    if abs(micro) > MAX_MICRO:
        raise MoneyError(text, "amount too large")
    return micro


def format_micro(micro: int, decimals: int = 4) -> str:
    """12_340_000 -> '12.3400'. Never hides precision: more digits are shown if present."""
    value = Decimal(micro) / MICRO
    shown = decimals
    while shown < 6 and micro % quantum(shown) != 0:
        shown += 1
    return f"{value:.{shown}f}"


def quantum(decimals: int) -> int:
    """Micro-units in one step of the last decimal (4 decimals -> 100)."""
    if not 0 <= decimals <= 6:
        raise ValueError(f"decimals must be 0..6, got {decimals}")
    return int(10 ** (6 - decimals))


def round_micro(exact: Fraction, decimals: int, method: Rounding) -> int:
    """Round an exact, non-negative amount of micro-units once, to `decimals`."""
    q = quantum(decimals)
    divisor = exact.denominator * q
    whole, rest = divmod(exact.numerator, divisor)
    if rest == 0 or method is Rounding.DOWN:
        return whole * q
    if method is Rounding.UP:
        return (whole + 1) * q
    return (whole + (1 if 2 * rest >= divisor else 0)) * q
