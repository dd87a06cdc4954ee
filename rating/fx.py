"""Exchange rates as exact values with effective instants, and conversion of integer
micro-unit amounts between currencies (pure: the instant is an argument).

A rate says 1 unit of `base` = `rate` units of `quote` from `effective_at` on; it is kept as
the decimal string it was given (an exact rational, never a float). Converting from base to
quote multiplies by the rate in force at the instant (the newest whose instant has come);
quote to base divides by it when only that direction is stored. The result is rounded UP
to the whole micro-unit: converted amounts are buy costs, and a cost is never understated
(a margin check on a rounded-down cost could accept a call that loses money)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
# Up to 9 whole digits and 12 decimals: NBP publishes 4 (6 for some), banks up to 10.
RATE = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,12})?", re.ASCII)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIRRORED_PER_PAIR = 32  # the newest rates of each pair Redis holds (the schedule's depth)


class FxError(ValueError):
    """Bad exchange-rate input; names the field."""

    code = "BAD_FX_RATE"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def parse_rate(text: str) -> str:
    """The rate's canonical decimal string ('4.312500' -> '4.3125'); FxError unless it is a
    plain positive decimal (no sign, exponent or grouping; a comma is read as the point)."""
    raw = text.strip().replace(",", ".")
    if RATE.fullmatch(raw) is None:
        raise FxError("rate", f"a positive decimal with at most 12 decimals, got {text!r}")
    value = Decimal(raw)
    if value == 0:
        raise FxError("rate", "must be above zero")
    return format(value.normalize(), "f")


def parse_currency(text: str, field: str) -> str:
    code = text.strip().upper()
    if CURRENCY.fullmatch(code) is None:
        raise FxError(field, f"a 3-letter ISO 4217 code, got {text!r}")
    return code


@dataclass(frozen=True, slots=True)
class FxRate:
    base: str
    quote: str
    rate: str  # exact decimal string: 1 base = rate quote
    effective_at: datetime

    @property
    def value(self) -> Fraction:
        return Fraction(Decimal(self.rate))

    def checked(self) -> FxRate:
        base = parse_currency(self.base, "base")
        quote = parse_currency(self.quote, "quote")
        if base == quote:
            raise FxError("quote", "must differ from the base currency")
        if self.effective_at.tzinfo is None:
            raise FxError("effective_at", "needs a time zone")
        return FxRate(base, quote, parse_rate(self.rate), self.effective_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "quote": self.quote,
            "rate": self.rate,
            "effective_at": self.effective_at.isoformat(),
        }


def ceil_micro(exact: Fraction) -> int:
    """The whole micro-units at or above a non-negative exact amount."""
    return -((-exact.numerator) // exact.denominator)


@dataclass(frozen=True)
class FxTable:
    """The rates known, by pair, each pair's rates in effective order."""

    pairs: Mapping[tuple[str, str], tuple[FxRate, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rates: Iterable[FxRate]) -> FxTable:
        grouped: dict[tuple[str, str], list[FxRate]] = {}
        for r in rates:
            grouped.setdefault((r.base, r.quote), []).append(r)
        return cls({k: tuple(sorted(v, key=lambda r: r.effective_at)) for k, v in grouped.items()})

    def in_force(self, base: str, quote: str, at: datetime) -> FxRate | None:
        found = None
        for r in self.pairs.get((base, quote), ()):
            if r.effective_at > at:
                break
            found = r
        return found

    def factor(self, base: str, quote: str, at: datetime) -> Fraction | None:
        """Units of `quote` per unit of `base` at `at`: the stored direction's rate, else the
        inverse of the other direction's; None when neither is known then."""
        if base == quote:
            return Fraction(1)
        direct = self.in_force(base, quote, at)
        if direct is not None:
            return direct.value
        inverse = self.in_force(quote, base, at)
        return None if inverse is None else 1 / inverse.value

    def convert(self, micro: int, base: str, quote: str, at: datetime) -> int | None:
        """`micro` of `base` in micro-units of `quote` (rounded up); None without a rate."""
        factor = self.factor(base, quote, at)
        return None if factor is None else ceil_micro(micro * factor)

    @cached_property
    def ident(self) -> tuple[object, ...]:
        """Identifies the table's content (for caches keyed by what prices a call)."""
        return tuple(sorted((k, tuple((r.rate, r.effective_at) for r in v))
                            for k, v in self.pairs.items()))  # fmt: skip


NO_FX = FxTable()


def fx_to_json(rates: Iterable[FxRate]) -> str:
    """The copy Redis holds: the newest MIRRORED_PER_PAIR rates of each pair, epoch ms."""
    table = FxTable.of(rates)
    return json.dumps(
        [
            [r.base, r.quote, r.rate, (r.effective_at - EPOCH) // timedelta(milliseconds=1)]
            for pair in sorted(table.pairs)
            for r in table.pairs[pair][-MIRRORED_PER_PAIR:]
        ]
    )


def fx_from_json(text: str | bytes) -> FxTable:
    return FxTable.of(
        FxRate(b, q, r, EPOCH + timedelta(milliseconds=ms)) for b, q, r, ms in json.loads(text)
    )
