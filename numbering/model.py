"""A telephone number of the operator's inventory (a DID) and its life: free, assigned to an
account, quarantined after release (so the next holder gets no calls meant for the last),
or ported out to another operator."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from rating.money import format_micro
from rating.numbers import InvalidNumber, normalise

CARRIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class NumberType(StrEnum):
    GEOGRAPHIC = "geographic"
    MOBILE = "mobile"
    NON_GEOGRAPHIC = "non_geographic"
    FOREIGN = "foreign"  # a number of another country (§5.4: released after 14 days negative)


class NumberStatus(StrEnum):
    FREE = "free"
    ASSIGNED = "assigned"
    QUARANTINED = "quarantined"
    PORTED_OUT = "ported_out"


class NumberError(ValueError):
    """Bad number input, or a change the terms or the number's state forbid."""

    code = "BAD_NUMBER"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class NumberConflict(NumberError):
    """The number's or the account's state forbids the change (not free, ported out...)."""

    code = "NUMBER_STATE"


class NumberNotFound(LookupError):
    code = "UNKNOWN_NUMBER"

    def __init__(self, number: str) -> None:
        super().__init__(f"unknown number {number!r}")
        self.number = number


@dataclass(frozen=True)
class Did:
    e164: str
    country: str
    type: NumberType
    carrier: str
    monthly_cost: int  # micro-units the carrier charges per month
    monthly_price: int  # micro-units the customer pays per month (gross)
    status: NumberStatus = NumberStatus.FREE
    account: str | None = None
    assigned_at: datetime | None = None
    quarantined_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["type"] = self.type.value
        out["status"] = self.status.value
        out["monthly_cost"] = format_micro(self.monthly_cost, 2)
        out["monthly_price"] = format_micro(self.monthly_price, 2)
        for name in ("assigned_at", "quarantined_until", "created_at", "updated_at"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value is not None else None
        return out


def parse_did(text: str, home_country: str) -> tuple[str, str, NumberType]:
    """A number as written ('+48 22 123 45 67', '022 123 45 67' in the home country) -> its
    E.164 form (normalised as the ledger normalises callers), country and type."""
    try:
        e164 = normalise(text, home_country).e164
    except InvalidNumber:
        raise NumberError("number", f"not a valid telephone number: {text!r}") from None
    parsed = phonenumbers.parse(e164, None)
    country = str(phonenumbers.region_code_for_number(parsed) or "")
    if country != home_country:
        return e164, country, NumberType.FOREIGN
    kind = phonenumbers.number_type(parsed)
    if kind == PhoneNumberType.FIXED_LINE:
        return e164, country, NumberType.GEOGRAPHIC
    if kind == PhoneNumberType.MOBILE:
        return e164, country, NumberType.MOBILE
    return e164, country, NumberType.NON_GEOGRAPHIC


def check_carrier(name: str) -> str:
    if not CARRIER.match(name):
        raise NumberError("carrier", "1-64 of letters, digits, '_', '.', '-'")
    return name
