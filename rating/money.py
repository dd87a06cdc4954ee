"""Money: integer micro-units everywhere; Decimal only at the edges (CSV, CLI, JSON)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from core.plain import NumberError
from core.plain import parse_decimal as parse_decimal  # the money edges parse through it
from core.plain import parse_whole as parse_whole

MICRO = 1_000_000
# Amounts stay far below 2**53 so the ledger's Lua (doubles) adds them exactly.
MAX_MICRO = 10**9 * MICRO

# Amounts from outside are parsed by core.plain; its error is the money error.
MoneyError = NumberError


class Rounding(StrEnum):
    UP = "up"
    HALF_UP = "half-up"
    DOWN = "down"


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
