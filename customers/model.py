"""The customer record: who stands behind accounts, how to reach them, whether verified.

Validation happens here, once, for every way in (CLI, panel): a bad field is a
CustomerError naming it, never a partial write."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import phonenumbers
import pycountry

from customers.taxid import TaxIdError, compact_nip, compact_vat

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
PL_POSTAL = re.compile(r"^[0-9]{2}-[0-9]{3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CustomerKind(StrEnum):
    CONSUMER = "consumer"  # a consumer in the Civil Code's sense (refunds, notices differ)
    BUSINESS = "business"


class Verification(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class CustomerError(ValueError):
    """Bad customer input, or a change the record does not allow; `field` names it."""

    code = "BAD_CUSTOMER"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class CustomerConflict(CustomerError):
    """The record's state forbids the change (exists, anonymised, another's account...)."""

    code = "CUSTOMER_STATE"


class CustomerNotFound(LookupError):
    code = "UNKNOWN_CUSTOMER"

    def __init__(self, customer: str) -> None:
        super().__init__(f"unknown customer {customer!r}")
        self.customer = customer


# What a customer may change on its own record (§3.6, §3.9: keep address, e-mail and phones
# current). Legal name, kind and tax ids are what verification checked: the operator's.
CONTACT_FIELDS = ("street", "postal_code", "city", "email", "phone", "language")
# What an operator may change with `update` (verification has its own command).
EDITABLE_FIELDS = (
    "kind",
    "legal_name",
    "tax_id",
    "vat_id",
    "street",
    "postal_code",
    "city",
    "country",
    "email",
    "phone",
    "language",
)


@dataclass(frozen=True)
class Customer:
    id: str
    legal_name: str
    email: str
    kind: CustomerKind = CustomerKind.CONSUMER
    tax_id: str | None = None  # NIP, 10 digits
    vat_id: str | None = None  # EU VAT id, country prefix first
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = "PL"
    phone: str | None = None  # E.164
    language: str = "pl"
    verification: Verification = Verification.PENDING
    verification_by: str | None = None
    verification_at: datetime | None = None
    verification_note: str = ""
    first_topup_at: datetime | None = None
    contract_started_at: datetime | None = None
    anonymised_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.verification is Verification.VERIFIED

    def validated(self) -> Customer:
        """The record in canonical form (compact NIP/VAT id, E.164 phone), or CustomerError."""
        if not CUSTOMER_ID.match(self.id):
            raise CustomerError("id", "1-64 of letters, digits, '_', '.', '@', '-'")
        country = _country(self.country)
        nip, vat = _tax_ids(self.kind, self.tax_id, self.vat_id, country)
        return replace(
            self,
            kind=_enum(CustomerKind, self.kind, "kind"),
            verification=_enum(Verification, self.verification, "verification"),
            legal_name=_text("legal_name", self.legal_name, 200, required=True),
            street=_text("street", self.street, 200),
            city=_text("city", self.city, 100),
            postal_code=_postal(self.postal_code, country),
            country=country,
            email=_email(self.email),
            phone=_phone(self.phone, country),
            language=_language(self.language),
            tax_id=nip,
            vat_id=vat,
        )

    def with_changes(self, **changes: Any) -> Customer:
        return replace(self, **changes).validated()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, value in out.items():
            if isinstance(value, datetime):
                out[name] = value.isoformat()
            elif isinstance(value, StrEnum):
                out[name] = value.value
        return out


CUSTOMER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Customer))


def _enum(kind: type[StrEnum], value: object, name: str) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(v.value for v in kind)
        raise CustomerError(name, f"one of {allowed}, not {value!r}") from None


def _text(name: str, value: str, limit: int, *, required: bool = False) -> str:
    text = " ".join(str(value).split())
    if required and not text:
        raise CustomerError(name, "must not be empty")
    if len(text) > limit:
        raise CustomerError(name, f"at most {limit} characters")
    if _CONTROL.search(text):
        raise CustomerError(name, "control characters are not allowed")
    return text


def _country(value: str) -> str:
    code = str(value).upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise CustomerError("country", f"ISO 3166 two-letter code expected, got {value!r}")
    return code


def _postal(value: str, country: str) -> str:
    text = _text("postal_code", value, 16)
    if text and country == "PL" and not PL_POSTAL.match(text):
        raise CustomerError("postal_code", f"a Polish postal code is NN-NNN, not {value!r}")
    return text


def _email(value: str) -> str:
    text = str(value).strip()
    if len(text) > 254 or not EMAIL.match(text):
        raise CustomerError("email", f"not an e-mail address: {value!r}")
    return text


def _phone(value: str | None, country: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    try:
        parsed = phonenumbers.parse(str(value), country)
    except phonenumbers.NumberParseException:
        raise CustomerError("phone", f"not a telephone number: {value!r}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise CustomerError("phone", f"not a valid telephone number: {value!r}")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _language(value: str) -> str:
    code = str(value).lower()
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        raise CustomerError("language", f"ISO 639-1 two-letter code expected, got {value!r}")
    return code


def _tax_ids(
    kind: CustomerKind | str, tax_id: str | None, vat_id: str | None, country: str
) -> tuple[str | None, str | None]:
    """Compact NIP and VAT id; a business must have the one its country issues."""
    try:
        nip = compact_nip(tax_id) if tax_id else None
        vat = compact_vat(vat_id) if vat_id else None
    except TaxIdError as exc:
        raise CustomerError(exc.field, exc.why) from None
    if nip is not None and country != "PL":
        raise CustomerError("tax_id", "a NIP is Polish: give a foreign business's EU VAT id")
    if vat is not None and nip is not None and vat.startswith("PL") and vat[2:] != nip:
        raise CustomerError("vat_id", f"{vat} is not the VAT id of NIP {nip}")
    if str(kind) == CustomerKind.BUSINESS.value:
        if country == "PL" and nip is None:
            raise CustomerError("tax_id", "a Polish business needs its NIP")
        if country != "PL" and vat is None:
            raise CustomerError("vat_id", "a foreign business needs its EU VAT id")
    return nip, vat
