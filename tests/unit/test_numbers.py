from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.numbers import InvalidNumber, NumberClass, normalise

FORMS = ["{n}", "0{n}", "48{n}", "0048{n}", "+48{n}", "+48 {a}-{b}-{c}", "00 48 {a} {b} {c}"]


def forms(nsn: str) -> list[str]:
    return [f.format(n=nsn, a=nsn[:3], b=nsn[3:6], c=nsn[6:]) for f in FORMS]


@pytest.mark.parametrize(
    ("nsn", "klass"),
    [
        ("701234567", NumberClass.PREMIUM),
        ("703123456", NumberClass.PREMIUM),
        ("708123456", NumberClass.PREMIUM),
        ("801234567", NumberClass.SHARED_COST),
        ("800123456", NumberClass.TOLL_FREE),
        ("391234567", NumberClass.VOIP),
        ("512345678", NumberClass.MOBILE),
        ("601234567", NumberClass.MOBILE),
        ("221234567", NumberClass.GEOGRAPHIC),
        ("121234567", NumberClass.GEOGRAPHIC),
    ],
)
def test_every_dialling_form_gives_one_e164_and_class(nsn: str, klass: NumberClass) -> None:
    results = {(n.e164, n.number_class) for n in map(normalise, forms(nsn))}
    assert results == {("+48" + nsn, klass)}


@pytest.mark.parametrize("code", ["112", "997", "998", "999"])
def test_emergency_short_codes(code: str) -> None:
    n = normalise(code)
    assert n.number_class is NumberClass.EMERGENCY
    assert n.e164 == code


@pytest.mark.parametrize(
    ("raw", "klass"),
    [
        ("+979123456789", NumberClass.PREMIUM),
        ("+80812345678", NumberClass.SHARED_COST),
        ("+88213456789", NumberClass.HIGH_RISK),
        ("00881612345678", NumberClass.HIGH_RISK),
        ("+883510012345", NumberClass.HIGH_RISK),
        ("+870772123456", NumberClass.HIGH_RISK),
        ("+12425551234", NumberClass.HIGH_RISK),
        ("+18765551234", NumberClass.HIGH_RISK),
        ("+12125551234", NumberClass.INTERNATIONAL),
        ("+4930123456", NumberClass.INTERNATIONAL),
        ("00442079460000", NumberClass.INTERNATIONAL),
    ],
)
def test_international_classes(raw: str, klass: NumberClass) -> None:
    assert normalise(raw).number_class is klass


@pytest.mark.parametrize(
    "raw", ["", "+", "12a", "(22)1234567", "22.123.45.67", "*100#", "0", "70123", "+0048221234567"]
)
def test_invalid_numbers_are_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidNumber) as err:
        normalise(raw)
    assert err.value.why


def test_home_country_changes_the_national_form() -> None:
    assert normalise("030 1234567", "DE").e164 == "+49301234567"
    assert normalise("030 1234567", "DE").number_class is NumberClass.GEOGRAPHIC
    # the same digits from a Polish account are not a Polish number
    with pytest.raises(InvalidNumber):
        normalise("0301234567", "PL")


PL_RANGES = ["70", "80", "39", "50", "51", "60", "22", "12", "58", "71"]


@given(st.sampled_from(PL_RANGES), st.text("0123456789", min_size=7, max_size=7))
def test_forms_agree_for_any_polish_number(start: str, rest: str) -> None:
    nsn = start + rest
    outcomes = set()
    for raw in forms(nsn):
        try:
            n = normalise(raw)
            outcomes.add((n.e164, n.number_class))
        except InvalidNumber:
            outcomes.add(("invalid", None))
    assert len(outcomes) == 1


@pytest.mark.parametrize("series", [f"70{d}" for d in range(10)])
def test_every_polish_70x_number_is_premium_in_every_form(series: str) -> None:
    """705 (and 702, 709) are invalid to libphonenumber: they must still be premium, not
    invalid, or the switch answers 484 instead of refusing them as premium (403)."""
    nsn = series + "123456"
    for raw in forms(nsn):
        n = normalise(raw)
        assert (n.e164, n.number_class) == ("+48" + nsn, NumberClass.PREMIUM), raw


@given(st.integers(0, 9), st.text("0123456789", min_size=6, max_size=6))
def test_any_70x_number_is_premium(third: int, rest: str) -> None:
    assert normalise(f"+4870{third}{rest}").number_class is NumberClass.PREMIUM
