"""Accounts: who pays, how (prepaid/postpaid), and the limits that apply to their calls."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from rating.codes import is_currency, is_deck_name

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
PREFIX = re.compile(r"^[0-9]{1,15}$")
E164 = re.compile(r"^[+][1-9][0-9]{1,14}$")
SIP_LOGIN = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")  # as the sip_logins table allows


class AccountKind(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class AccountError(ValueError):
    """Bad account input; `field` names the offending field."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class AccountNotFound(LookupError):
    def __init__(self, account: str) -> None:
        super().__init__(f"unknown account {account!r}")
        self.account = account


@dataclass(frozen=True)
class Account:
    id: str
    kind: AccountKind = AccountKind.PREPAID
    status: AccountStatus = AccountStatus.ACTIVE
    currency: str = "PLN"
    country: str = "PL"
    timezone: str = "Europe/Warsaw"
    deck: str | None = None
    credit_limit: int = 0  # micro-units the balance may go below zero
    max_calls: int = 10  # concurrent calls; 0 = no limit
    cps: int = 2  # new calls per second; 0 = no limit
    daily_cap: int = 0  # micro-units per local day; 0 = no cap
    allow_premium: bool = False
    allow_high_risk: bool = False
    blocked_prefixes: tuple[str, ...] = field(default_factory=tuple)
    invoice_overdue: bool = False
    customer_id: str | None = None  # the customer record that owns the account, if any
    unverified: bool = False  # its customer is not verified: outbound calls are refused
    numbers: tuple[str, ...] = field(default_factory=tuple)  # its DIDs, E.164
    caller_id: str | None = None  # the DID its outbound calls present unless they name another
    # Its active SIP logins (kept by the database from `sip_logins`): what inbound calls ring.
    sip_logins: tuple[str, ...] = field(default_factory=tuple)
    inbound_max_calls: int = 0  # concurrent inbound calls; 0 = only max_calls (all calls)
    inbound_cps: int = 5  # new inbound calls per second; 0 = no limit

    def validated(self) -> Account:
        if not ACCOUNT_ID.match(self.id):
            raise AccountError("id", "1-64 of letters, digits, '_', '.', '@', '-'")
        for name in (
            "credit_limit", "max_calls", "cps", "daily_cap", "inbound_max_calls", "inbound_cps",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AccountError(name, f"must be a whole number >= 0, got {value!r}")
        if self.kind is AccountKind.PREPAID and self.credit_limit:
            raise AccountError("credit_limit", "prepaid accounts have no credit limit")
        if not is_currency(self.currency):
            raise AccountError("currency", f"ISO 4217 code expected, got {self.currency!r}")
        if self.deck is not None and not is_deck_name(self.deck):
            raise AccountError("deck", f"not a deck name: {self.deck!r}")
        if not phonenumbers.country_code_for_region(self.country):
            raise AccountError("country", f"unknown country {self.country!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise AccountError("timezone", f"unknown time zone {self.timezone!r}") from None
        for prefix in self.blocked_prefixes:
            if not PREFIX.match(prefix):
                raise AccountError("blocked_prefixes", f"{prefix!r} is not 1-15 digits")
        if self.customer_id is not None and not ACCOUNT_ID.match(self.customer_id):
            raise AccountError("customer_id", f"not a customer id: {self.customer_id!r}")
        if self.unverified and self.customer_id is None:
            raise AccountError("unverified", "only an account with a customer can be unverified")
        for number in self.numbers:
            if not E164.match(number):
                raise AccountError("numbers", f"{number!r} is not an E.164 number")
        if self.caller_id is not None and self.caller_id not in self.numbers:
            raise AccountError("caller_id", f"{self.caller_id} is not one of the account's numbers")
        for login in self.sip_logins:
            if not SIP_LOGIN.match(login):
                raise AccountError("sip_logins", f"{login!r} is not a SIP login")
        return self

    def redis_fields(self) -> dict[str, str]:
        """The settings the ledger scripts read (never money: that moves only by script)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "currency": self.currency,
            "country": self.country,
            "timezone": self.timezone,
            "deck": self.deck or "",
            "credit_limit": str(self.credit_limit),
            "max_calls": str(self.max_calls),
            "cps": str(self.cps),
            "daily_cap": str(self.daily_cap),
            "allow_premium": "1" if self.allow_premium else "0",
            "allow_high_risk": "1" if self.allow_high_risk else "0",
            "blocked_prefixes": ",".join(self.blocked_prefixes),
            "invoice_overdue": "1" if self.invoice_overdue else "0",
            "unverified": "1" if self.unverified else "0",
            "numbers": ",".join(self.numbers),
            "caller_id": self.caller_id or "",
            "sip_logins": ",".join(self.sip_logins),
            "inbound_max_calls": str(self.inbound_max_calls),
            "inbound_cps": str(self.inbound_cps),
        }

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["status"] = self.status.value
        out["blocked_prefixes"] = list(self.blocked_prefixes)
        out["numbers"] = list(self.numbers)
        out["sip_logins"] = list(self.sip_logins)
        return out

    def with_changes(self, **changes: Any) -> Account:
        return replace(self, **changes).validated()


# The account's fields, in declaration order: the columns of `accounts`, the API's schema.
ACCOUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Account))
