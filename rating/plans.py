"""Plans: a fee per period (a calendar month) and allowances of free seconds for
destinations picked by number class and/or E.164 prefix ("PL mobile+fixed 300 min")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rating.accounts import PREFIX
from rating.codes import is_currency
from rating.numbers import NumberClass

PLAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PERIODS = ("month",)
# Classes a bundle may cover: emergency calls are free and never touch a bundle.
CLASSES = tuple(c.value for c in NumberClass if c is not NumberClass.EMERGENCY)
MAX_ALLOWANCES = 16
MAX_SECONDS = 10**9  # far above a month of seconds; keeps the script's integers small
MAX_FEE = 10**15  # micro-units (a billion currency units)
MAX_LABEL = 80


class PlanError(ValueError):
    """Bad plan or assignment input; `field` names the offending field."""

    code = "BAD_PLAN"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class PlanConflict(PlanError):
    """The plan exists already, or an assignment would overlap another one."""

    code = "PLAN_CONFLICT"


class PlanNotFound(LookupError):
    code = "UNKNOWN_PLAN"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plan {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Allowance:
    """Free seconds per period for calls whose class is in `classes` (empty: any) and whose
    number starts with one of `prefixes` (empty: any)."""

    seconds: int
    classes: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    label: str = ""

    def checked(self, where: str) -> Allowance:
        if not isinstance(self.seconds, int) or isinstance(self.seconds, bool):
            raise PlanError(f"{where}.seconds", "a whole number of seconds")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise PlanError(f"{where}.seconds", f"between 1 and {MAX_SECONDS}")
        for c in self.classes:
            if c not in CLASSES:
                raise PlanError(f"{where}.classes", f"{c!r} is not one of {', '.join(CLASSES)}")
        for p in self.prefixes:
            if not PREFIX.match(p):
                raise PlanError(f"{where}.prefixes", f"{p!r} is not E.164 digits")
        if len(self.label) > MAX_LABEL or any(ch in self.label for ch in "|;\n"):
            raise PlanError(f"{where}.label", f"at most {MAX_LABEL} characters, no | ; or newline")
        return replace(self, classes=tuple(dict.fromkeys(self.classes)),
                       prefixes=tuple(dict.fromkeys(self.prefixes)))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "classes": list(self.classes),
            "prefixes": list(self.prefixes),
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    fee: int  # net micro-units per period, charged in advance
    currency: str
    allowances: tuple[Allowance, ...] = field(default_factory=tuple)
    period: str = "month"
    disabled_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def checked(self) -> Plan:
        if not PLAN_NAME.match(self.name):
            raise PlanError("name", "1-64 of letters, digits, '_', '.', '-' (not first)")
        if self.period not in PERIODS:
            raise PlanError("period", f"one of {', '.join(PERIODS)}")
        if not isinstance(self.fee, int) or isinstance(self.fee, bool):
            raise PlanError("fee", "integer micro-units")
        if not 0 <= self.fee <= MAX_FEE:
            raise PlanError("fee", f"between 0 and {MAX_FEE} micro-units")
        if not is_currency(self.currency):
            raise PlanError("currency", f"not an ISO 4217 code: {self.currency!r}")
        if not self.allowances:
            raise PlanError("allowances", "at least one allowance")
        if len(self.allowances) > MAX_ALLOWANCES:
            raise PlanError("allowances", f"at most {MAX_ALLOWANCES}")
        checked = tuple(a.checked(f"allowances[{i}]") for i, a in enumerate(self.allowances))
        return replace(self, allowances=checked)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "period": self.period,
            "fee": self.fee,
            "currency": self.currency,
            "allowances": [a.as_dict() for a in self.allowances],
            "disabled": self.disabled,
            "disabled_at": _iso(self.disabled_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Assignment:
    id: int
    account: str
    plan: str
    start_at: datetime
    end_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return self.start_at <= at and (self.end_at is None or at < self.end_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "plan": self.plan,
            "start_at": self.start_at.isoformat(),
            "end_at": _iso(self.end_at),
        }


def parse_allowance(text: str, where: str = "--allowance") -> Allowance:
    """`SECONDS[:classes[:prefixes[:label]]]`, lists comma-separated, e.g.
    `18000:mobile,geographic:48:PL mobile+fixed` (a minute count may end in `m`)."""
    parts = text.split(":", 3)
    amount = parts[0].strip()
    scale = 60 if amount.endswith("m") else 1
    digits = amount[:-1] if scale == 60 else amount
    if not digits.isdigit():
        raise PlanError(where, f"seconds (or minutes ending in m) first: {text!r}")
    lists = [tuple(x for x in (parts[i] if len(parts) > i else "").split(",") if x)
             for i in (1, 2)]  # fmt: skip
    label = parts[3] if len(parts) > 3 else ""
    return Allowance(int(digits) * scale, lists[0], lists[1], label).checked(where)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
