"""Splitting a gross amount into net and VAT, exactly.

Rule: VAT = gross x rate / (100% + rate), computed exactly (a fraction of micro-units) and
rounded once, half away from zero, to the currency's minor unit (2 decimals: 1 grosz);
net = gross - VAT. So net + VAT == gross always, and a credit note of -X splits as the
mirror image of an invoice of X. VAT is computed on a document's total, not per line."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from rating.money import quantum

BASIS = 10_000  # rates are in basis points: 23% = 2300


@dataclass(frozen=True, slots=True)
class VatSplit:
    gross: int
    net: int
    vat: int
    rate_bp: int


def split_gross(gross: int, rate_bp: int, decimals: int = 2) -> VatSplit:
    if not 0 <= rate_bp <= BASIS:
        raise ValueError(f"VAT rate must be 0..10000 basis points, got {rate_bp}")
    q = quantum(decimals)
    exact = Fraction(abs(gross) * rate_bp, (BASIS + rate_bp) * q)  # in units of q
    whole, rest = divmod(exact.numerator, exact.denominator)
    if 2 * rest >= exact.denominator:
        whole += 1
    vat = whole * q * (1 if gross >= 0 else -1)
    return VatSplit(gross, gross - vat, vat, rate_bp)
