"""Splitting a gross amount into net and VAT, exactly.

Rule: VAT = gross x rate / (100% + rate), computed exactly (a fraction of micro-units) and
rounded once, half away from zero, to the currency's minor unit (2 decimals: 1 grosz);
net = gross - VAT. So net + VAT == gross always, and a credit note of -X splits as the
mirror image of an invoice of X.

Documents are in grosze: every line's gross is rounded half away from zero to the grosz
(`to_minor`), the document's gross is the sum of its lines, and VAT is computed once per
rate on that sum (all lines of a document carry the operator's one rate) — the "from gross"
method for prices that include VAT. The ledger keeps micro-units; the sub-grosz difference
between a document and the ledger amounts behind it is booked as a rounding entry."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from rating.money import Rounding, round_micro

BASIS = 10_000  # rates are in basis points: 23% = 2300


@dataclass(frozen=True, slots=True)
class VatSplit:
    gross: int
    net: int
    vat: int
    rate_bp: int


def to_minor(micro: int, decimals: int = 2) -> int:
    """`micro` rounded half away from zero to the currency's minor unit (a grosz)."""
    whole = round_micro(Fraction(abs(micro)), decimals, Rounding.HALF_UP)
    return whole if micro >= 0 else -whole


def split_gross(gross: int, rate_bp: int, decimals: int = 2) -> VatSplit:
    if not 0 <= rate_bp <= BASIS:
        raise ValueError(f"VAT rate must be 0..10000 basis points, got {rate_bp}")
    exact = Fraction(abs(gross) * rate_bp, BASIS + rate_bp)
    vat = round_micro(exact, decimals, Rounding.HALF_UP) * (1 if gross >= 0 else -1)
    return VatSplit(gross, gross - vat, vat, rate_bp)
