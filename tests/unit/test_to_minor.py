"""`to_minor` in integers rounds exactly as the general rounding of an exact amount does
(half away from zero, to the grosz or any number of decimals)."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from billing.vat import to_minor
from rating.money import Rounding, round_micro


def reference(micro: int, decimals: int) -> int:
    whole = round_micro(Fraction(abs(micro)), decimals, Rounding.HALF_UP)
    return whole if micro >= 0 else -whole


@pytest.mark.parametrize("decimals", range(7))
def test_to_minor_is_the_exact_rounding(decimals: int) -> None:
    rng = random.Random(19)
    edges = [0, 1, -1, 4_999, 5_000, -5_000, 5_001, -4_999, 9_999, 10_000, 123_456_789]
    for micro in edges + [rng.randint(-(10**12), 10**12) for _ in range(2_000)]:
        assert to_minor(micro, decimals) == reference(micro, decimals), (micro, decimals)


def test_half_a_grosz_rounds_away_from_zero() -> None:
    assert to_minor(5_000) == 10_000
    assert to_minor(-5_000) == -10_000
    assert to_minor(4_999) == 0
    with pytest.raises(ValueError):
        to_minor(1, 7)
