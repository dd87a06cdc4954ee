"""Dialled numbers: normalisation to E.164 and classification.

Every dialling form of one number must give the same E.164 and class, because every
rule (premium block, blocked prefixes, rates) is applied to the normalised form only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo


class NumberClass(StrEnum):
    EMERGENCY = "emergency"
    PREMIUM = "premium"
    SHARED_COST = "shared_cost"
    TOLL_FREE = "toll_free"
    MOBILE = "mobile"
    GEOGRAPHIC = "geographic"
    VOIP = "voip"
    INTERNATIONAL = "international"
    HIGH_RISK = "high_risk"


class InvalidNumber(ValueError):
    """The dialled string is not a number we can route; `why` says what is wrong."""

    def __init__(self, raw: str, why: str) -> None:
        super().__init__(f"invalid number {raw!r}: {why}")
        self.raw = raw
        self.why = why


@dataclass(frozen=True, slots=True)
class Number:
    raw: str
    e164: str  # "+48701234567", or the short code for emergency calls
    number_class: NumberClass
    country: str  # ISO region of the number ("001" for non-geographic), home for short codes

    @property
    def digits(self) -> str:
        """E.164 without '+': what rate-deck prefixes match against."""
        return self.e164.lstrip("+")

    def as_dict(self) -> dict[str, str]:
        return {
            "raw": self.raw,
            "e164": self.e164,
            "class": self.number_class.value,
            "country": self.country,
        }


# Revenue-share fraud favourites that libphonenumber does not call premium.
HIGH_RISK_PREFIXES: tuple[str, ...] = ("881", "882", "883", "870")
# Caribbean NANP areas: dialled like +1 domestic numbers, priced and abused as international.
CARIBBEAN_NANP: frozenset[str] = frozenset(
    "242 246 264 268 284 345 441 473 649 664 758 767 784 809 829 849 868 869 876".split()
)

_ALLOWED = re.compile(r"^\+?[0-9]+$")
_SEPARATORS = re.compile(r"[ \t\-]")

_TYPE_CLASS = {
    PhoneNumberType.PREMIUM_RATE: NumberClass.PREMIUM,
    PhoneNumberType.SHARED_COST: NumberClass.SHARED_COST,
    PhoneNumberType.TOLL_FREE: NumberClass.TOLL_FREE,
    PhoneNumberType.MOBILE: NumberClass.MOBILE,
    PhoneNumberType.FIXED_LINE: NumberClass.GEOGRAPHIC,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberClass.GEOGRAPHIC,
    PhoneNumberType.VOIP: NumberClass.VOIP,
}
# Every Polish 70x number is audiotext (premium rate), whatever the metadata version says
# of its range: libphonenumber calls 702/705/709 numbers invalid, which would
# answer them 484 instead of refusing them as premium (and rate them as nothing).
_PL_PREMIUM = re.compile(r"^70[0-9]{7}$")


def normalise(raw: str, country: str = "PL") -> Number:
    """Normalise a dialled string for an account whose home region is `country`."""
    return _normalise_cached(raw, country.upper())


@lru_cache(maxsize=65536)
def _normalise_cached(raw: str, country: str) -> Number:
    home_cc = phonenumbers.country_code_for_region(country)
    if home_cc == 0:
        raise InvalidNumber(raw, f"unknown home country {country!r}")
    text = _SEPARATORS.sub("", raw)
    if not _ALLOWED.match(text):
        raise InvalidNumber(raw, "only digits, spaces, dashes and a leading '+' are allowed")
    if not text.startswith("+") and shortnumberinfo.is_emergency_number(text, country):
        return Number(raw, text, NumberClass.EMERGENCY, country)
    parsed = _parse(raw, text, country, str(home_cc))
    return Number(raw, _e164(parsed), _classify(raw, parsed, home_cc), _region(parsed))


def _parse(raw: str, text: str, country: str, home_cc: str) -> phonenumbers.PhoneNumber:
    candidates: list[str]
    if text.startswith("+"):
        candidates = [text]
    elif text.startswith("00"):
        candidates = ["+" + text[2:]]
    elif text.startswith("0"):
        # Trunk prefix as customers type it ("0701234567"); Poland has none in its plan.
        candidates = ["+" + home_cc + text[1:]]
    else:
        candidates = ["+" + home_cc + text]
        if text.startswith(home_cc):
            candidates.append("+" + text)
    best: phonenumbers.PhoneNumber | None = None
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed) or _pl_premium(parsed):
            return parsed
        if best is None and _high_risk(parsed) and phonenumbers.is_possible_number(parsed):
            best = parsed
    if best is not None:
        return best
    raise InvalidNumber(raw, "not a valid number in the numbering plan")


def _e164(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _region(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.region_code_for_number(parsed) or "001"


def _pl_premium(parsed: phonenumbers.PhoneNumber) -> bool:
    return parsed.country_code == 48 and _PL_PREMIUM.match(str(parsed.national_number)) is not None


def _high_risk(parsed: phonenumbers.PhoneNumber) -> bool:
    cc = str(parsed.country_code)
    if cc in HIGH_RISK_PREFIXES:
        return True
    return cc == "1" and str(parsed.national_number)[:3] in CARIBBEAN_NANP


def _classify(raw: str, parsed: phonenumbers.PhoneNumber, home_cc: int) -> NumberClass:
    kind = phonenumbers.number_type(parsed)
    if kind == PhoneNumberType.PREMIUM_RATE or _pl_premium(parsed):
        return NumberClass.PREMIUM
    if _high_risk(parsed) and parsed.country_code != home_cc:
        return NumberClass.HIGH_RISK
    if parsed.country_code != home_cc:
        if kind == PhoneNumberType.SHARED_COST:
            return NumberClass.SHARED_COST  # +808 international shared cost
        return NumberClass.INTERNATIONAL
    cls = _TYPE_CLASS.get(kind)
    if cls is None:
        raise InvalidNumber(raw, "number type is not routable")
    return cls
