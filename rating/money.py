"""Money: integer micro-units everywhere; Decimal only at the edges (CSV, CLI, JSON)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction

MICRO = 1_000_000
# Amounts stay far below 2**53 so the ledger's Lua (doubles) adds them exactly.
MAX_MICRO = 10**9 * MICRO


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


def parse_micro(text: str, *, allow_negative: bool = False) -> int:
    """'12.34' -> 12_340_000. More than 6 decimals is an error, never silently rounded."""
    raw = text.strip()
    if not raw:
        raise MoneyError(text, "empty amount")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MoneyError(text, "not a decimal number") from None
    if not value.is_finite():
        raise MoneyError(text, "not a finite number")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise MoneyError(text, "more than 6 decimal places")
    if value < 0 and not allow_negative:
        raise MoneyError(text, "negative amount")
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
