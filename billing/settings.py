"""Billing settings: the operator's terms, from TOLLGATE_BILLING_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.parties import SellerSettings
from billing.vat import code_of_bp, rate_code
from notify.settings import NotifySettings
from numbering.settings import NumberingSettings
from runtime.settings import SettingsError


@dataclass(frozen=True)
class BillingSettings:
    vat_rate_bp: int = 2300  # 23%
    vat_decimals: int = 2  # VAT is rounded to the grosz
    due_days: int = 14  # an invoice is due this many days after it is issued
    overdue_block_days: int = 14  # days past due before outbound calls are blocked
    foreign_after_days: int = 14  # prepaid negative this long: foreign numbers go
    close_after_months: int = 3  # prepaid negative this long: the account is closed
    # §5.4 removes foreign numbers; blocking outbound foreign calls as well is the
    # operator's choice (TOLLGATE_BILLING_FOREIGN_BLOCK), off by default
    foreign_block: bool = False
    numbering: NumberingSettings = field(default_factory=NumberingSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)  # the §5.4 notices
    timezone: str = "Europe/Warsaw"  # the operator's books: issue dates, numbering series
    seller: SellerSettings | None = None  # who issues the documents (TOLLGATE_SELLER_*)
    # (E.164 prefix without '+', rate code): calls to these prefixes take this rate instead
    # of the default, longest prefix first; e.g. np for calls ending abroad
    vat_rules: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # pro-formas before paid periods (the second provider's terms): off unless the operator's
    # terms promise them (TOLLGATE_BILLING_PROFORMAS=1)
    proformas: bool = False
    proforma_days_before: int = 21  # a pro-forma is issued this long before a period ends
    exemption_basis: str = ""  # the legal basis printed for zw (exempt) lines
    # terms §7.1: a price increase takes effect no earlier than the start of the billing
    # period after this many whole periods following the notice
    price_notice_periods: int = 1
    # outage compensation by default (an account may have its own): "use_per_day" (terms
    # §9.7) or "month_per_12h" (the other provider's §10c); billing/outage_rules.py
    outage_rule: str = "use_per_day"

    def __post_init__(self) -> None:
        if not 0 <= self.vat_rate_bp <= 10_000:
            raise SettingsError("TOLLGATE_BILLING_VAT_RATE", "must be 0..100 (percent)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError("TOLLGATE_BILLING_TIMEZONE", f"unknown {self.timezone!r}") from None
        if self.price_notice_periods < 0:
            raise SettingsError("TOLLGATE_BILLING_PRICE_NOTICE_PERIODS", "must be >= 0")
        if self.outage_rule not in ("use_per_day", "month_per_12h"):
            raise SettingsError(
                "TOLLGATE_OUTAGE_RULE", f"use_per_day or month_per_12h, not {self.outage_rule!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BillingSettings:
        env = os.environ if env is None else env
        base = cls()
        rate = env.get("TOLLGATE_BILLING_VAT_RATE", "")
        block = env.get("TOLLGATE_BILLING_FOREIGN_BLOCK", "").lower()
        if block not in ("", "yes", "no", "true", "false", "1", "0", "on", "off"):
            raise SettingsError("TOLLGATE_BILLING_FOREIGN_BLOCK", f"yes or no, not {block!r}")
        return cls(
            vat_rate_bp=percent_to_bp(rate) if rate else base.vat_rate_bp,
            timezone=env.get("TOLLGATE_BILLING_TIMEZONE", "") or base.timezone,
            seller=SellerSettings.from_env(env),
            vat_rules=parse_vat_rules(env.get("TOLLGATE_BILLING_VAT_RULES", "")),
            exemption_basis=env.get("TOLLGATE_BILLING_VAT_EXEMPTION_BASIS", "").strip(),
            proformas=_flag(env, "TOLLGATE_BILLING_PROFORMAS"),
            foreign_block=block in ("yes", "true", "1", "on"),
            numbering=NumberingSettings.from_env(env),
            notify=NotifySettings.from_env(env),
            price_notice_periods=_whole(env, "TOLLGATE_BILLING_PRICE_NOTICE_PERIODS", 1),
            outage_rule=env.get("TOLLGATE_OUTAGE_RULE", "").strip() or base.outage_rule,
        )

    @property
    def default_rate(self) -> str:
        return code_of_bp(self.vat_rate_bp)

    def rate_for_prefix(self, prefix: str) -> str:
        """The VAT rate code of calls to `prefix` (a rate deck's prefix, no '+')."""
        best = ""
        code = self.default_rate
        for rule, rule_code in self.vat_rules:
            if prefix.startswith(rule) and len(rule) >= len(best):
                best, code = rule, rule_code
        return code


def _whole(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise SettingsError(key, f"a whole number, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw not in ("", "0", "1", "true", "false", "yes", "no"):
        raise SettingsError(key, f"true or false, got {raw!r}")
    return raw in ("1", "true", "yes")


def parse_vat_rules(text: str) -> tuple[tuple[str, str], ...]:
    """'1=np,44=np,48=23' -> ((prefix, code), ...); '*' stands for every prefix."""
    rules = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        prefix, sep, code = item.partition("=")
        prefix = prefix.strip().lstrip("+")
        if not sep or not (prefix == "*" or prefix.isdigit()):
            raise SettingsError("TOLLGATE_BILLING_VAT_RULES", f"PREFIX=RATE expected, got {item!r}")
        try:
            rules.append(("" if prefix == "*" else prefix, rate_code(code)))
        except ValueError as e:
            raise SettingsError("TOLLGATE_BILLING_VAT_RULES", str(e)) from None
    return tuple(rules)


def percent_to_bp(text: str) -> int:
    """'23' -> 2300, '5.5' -> 550; at most two decimals, never rounded."""
    try:
        bp = Decimal(text.strip()) * 100
    except InvalidOperation:
        raise SettingsError("TOLLGATE_BILLING_VAT_RATE", f"not a number: {text!r}") from None
    if not bp.is_finite() or bp != bp.to_integral_value() or not 0 <= bp <= 10_000:
        raise SettingsError("TOLLGATE_BILLING_VAT_RATE", f"0..100 with 2 decimals: {text!r}")
    return int(bp)
