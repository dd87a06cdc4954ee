"""The VAT split in integers is the exact split rounded once (what it was written as with
fractions): the same VAT for every gross, rate and number of decimals."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from billing.vat import split_gross
from rating.money import Rounding, round_micro


@given(st.integers(-(10**15), 10**15), st.integers(0, 10_000), st.integers(0, 6))
def test_the_integer_split_is_the_exact_split_rounded_half_up(
    gross: int, rate_bp: int, decimals: int
) -> None:
    exact = Fraction(abs(gross) * rate_bp, 10_000 + rate_bp)
    vat = round_micro(exact, decimals, Rounding.HALF_UP) * (1 if gross >= 0 else -1)
    assert split_gross(gross, rate_bp, decimals).vat == vat


def test_ties_round_away_from_zero() -> None:
    assert split_gross(12_300, 2300).vat == 0  # 0.0123 x 23/123 = 0.0023 -> 0.00
    assert split_gross(10_000, 10_000).vat == 10_000  # 0.005 exactly: half a grosz, up
    assert split_gross(-10_000, 10_000).vat == -10_000  # ... away from zero
    assert split_gross(9_998, 10_000).vat == 0  # 0.004999: down
