"""Operators' routing rules per account and destination prefix (pin, exclude, allow a loss),
and how the rules matching one call combine into `routes.RouteRules`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rating.carriers import CarrierError
from rating.codes import is_deck_name
from rating.routes import RouteRules

PREFIX = re.compile(r"[0-9]{0,15}", re.ASCII)


@dataclass(frozen=True, slots=True)
class RouteRule:
    account: str = ""  # "" = every account
    prefix: str = ""  # E.164 digits; "" = every destination
    pin: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    allow_loss: bool = False

    def checked(self) -> RouteRule:
        prefix = self.prefix.removeprefix("+")
        if PREFIX.fullmatch(prefix) is None:
            raise CarrierError("prefix", f"E.164 digits (up to 15), not {self.prefix!r}")
        for field in ("pin", "exclude"):
            for name in getattr(self, field):
                if not is_deck_name(name):
                    raise CarrierError(field, f"not a carrier name: {name!r}")
        if set(self.pin) & set(self.exclude):
            raise CarrierError("pin", "a carrier cannot be both pinned and excluded")
        return RouteRule(self.account, prefix, tuple(self.pin), tuple(self.exclude),
                         self.allow_loss)  # fmt: skip

    def matches(self, account: str, digits: str) -> bool:
        return self.account in ("", account) and digits.startswith(self.prefix)

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "prefix": self.prefix, "pin": list(self.pin),
                "exclude": list(self.exclude), "allow_loss": self.allow_loss}  # fmt: skip


def combine(rules: Iterable[RouteRule], account: str, digits: str) -> RouteRules:
    """The rules for one call: every matching rule's excludes, any one's loss allowance, and
    the pin of the most specific (longest prefix, then the account's own over everyone's)."""
    found = [r for r in rules if r.matches(account, digits)]
    pins = sorted((r for r in found if r.pin), key=lambda r: (len(r.prefix), r.account != ""))
    return RouteRules(
        pin=pins[-1].pin if pins else (),
        exclude=frozenset(c for r in found for c in r.exclude),
        allow_loss=any(r.allow_loss for r in found),
    )


def rules_to_json(rules: Iterable[RouteRule]) -> str:
    return json.dumps([r.as_dict() for r in rules], sort_keys=True)


def rules_from_json(text: str | bytes) -> list[RouteRule]:
    found = json.loads(text)
    return [RouteRule(d["account"], d["prefix"], tuple(d["pin"]), tuple(d["exclude"]),
                      d["allow_loss"]) for d in found]  # fmt: skip
