"""The parties of a document: the seller (the operator, from configuration) and the buyer
(from the customer record). A document keeps both as they were when it was issued, so a
later change of address never rewrites an issued invoice.

Tax ids are checked with python-stdnum (Polish NIP, EU VAT numbers) and the seller's bank
account with schwifty (IBAN checksum and country format)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.pl import nip as pl_nip

from runtime.settings import SettingsError


class PartyError(ValueError):
    """A party's data is wrong; `field` names what."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def valid_nip(text: str, field: str = "nip") -> str:
    """A Polish NIP in its compact form (10 digits, checksum verified)."""
    try:
        return str(pl_nip.validate(text))
    except ValidationError as e:
        raise PartyError(field, f"not a valid NIP: {text!r} ({e})") from None


def valid_vat_id(text: str, field: str = "vat_id") -> str:
    """An EU VAT number with its country prefix (e.g. DE123456788)."""
    try:
        return str(eu_vat.validate(text))
    except ValidationError as e:
        raise PartyError(field, f"not a valid EU VAT number: {text!r} ({e})") from None


def valid_iban(text: str, field: str = "iban") -> str:
    try:
        return str(IBAN(text).compact)
    except SchwiftyException as e:
        raise PartyError(field, f"not a valid IBAN: {text!r} ({e})") from None


def format_iban(compact: str) -> str:
    return str(IBAN(compact).formatted)


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address: tuple[str, ...]  # lines as printed: street, postcode and city
    country: str = "PL"  # ISO 3166 alpha-2
    nip: str = ""  # Polish NIP, compact
    vat_id: str = ""  # an EU VAT number of a buyer outside Poland
    consumer: bool = False  # a natural person not in business: no NIP on the invoice
    email: str = ""
    iban: str = ""  # the seller's account for payments (compact)
    bank: str = ""
    language: str = "pl"  # ISO 639-1: the buyer's, for a second language on documents

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": list(self.address),
            "country": self.country,
            "nip": self.nip,
            "vat_id": self.vat_id,
            "consumer": self.consumer,
            "email": self.email,
            "iban": self.iban,
            "bank": self.bank,
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Party:
        return cls(
            name=d["name"],
            address=tuple(d.get("address") or ()),
            country=d.get("country") or "PL",
            nip=d.get("nip") or "",
            vat_id=d.get("vat_id") or "",
            consumer=bool(d.get("consumer")),
            email=d.get("email") or "",
            iban=d.get("iban") or "",
            bank=d.get("bank") or "",
            language=d.get("language") or "pl",
        )

    @property
    def business(self) -> bool:
        return bool(self.nip or self.vat_id) and not self.consumer

    @property
    def eu_business(self) -> bool:
        """A business in another EU country (an EU VAT number, no Polish NIP): it accounts
        for the VAT of services supplied to it (art. 28b), the invoice says so."""
        return self.business and not self.nip and bool(self.vat_id)


def reverse_charge(rates: list[str], buyer: Party | None) -> bool:
    """Whether a document bears "odwrotne obciążenie" (art. 106e ust. 1 pkt 18): an
    out-of-scope (np) line sold to a business in another EU country."""
    return "np" in rates and buyer is not None and buyer.eu_business


@dataclass(frozen=True)
class SellerSettings:
    """The operator as printed on every document (TOLLGATE_SELLER_*)."""

    name: str
    address: tuple[str, ...]
    nip: str
    iban: str
    bank: str = ""
    email: str = ""
    place: str = ""  # place of issue, printed next to the date
    extra: tuple[str, ...] = field(default_factory=tuple)  # e.g. KRS, share capital

    @property
    def party(self) -> Party:
        return Party(
            self.name,
            self.address,
            "PL",
            self.nip,
            email=self.email,
            iban=self.iban,
            bank=self.bank,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SellerSettings | None:
        """None when no seller is configured (documents then cannot be printed or sent)."""
        env = os.environ if env is None else env
        name = env.get("TOLLGATE_SELLER_NAME", "").strip()
        if not name:
            return None

        def need(key: str) -> str:
            value = env.get(key, "").strip()
            if not value:
                raise SettingsError(key, "required when TOLLGATE_SELLER_NAME is set")
            return value

        address = tuple(p.strip() for p in need("TOLLGATE_SELLER_ADDRESS").split("|"))
        try:
            nip = valid_nip(need("TOLLGATE_SELLER_NIP"))
            iban = valid_iban(need("TOLLGATE_SELLER_IBAN"))
        except PartyError as e:
            raise SettingsError(f"TOLLGATE_SELLER_{e.field.upper()}", e.why) from None
        return cls(
            name=name,
            address=address,
            nip=nip,
            iban=iban,
            bank=env.get("TOLLGATE_SELLER_BANK", "").strip(),
            email=env.get("TOLLGATE_SELLER_EMAIL", "").strip(),
            place=env.get("TOLLGATE_SELLER_PLACE", "").strip(),
            extra=tuple(
                p.strip() for p in env.get("TOLLGATE_SELLER_EXTRA", "").split("|") if p.strip()
            ),
        )
