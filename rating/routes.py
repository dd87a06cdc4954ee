"""Least-cost routing and margin protection, as a pure function of its inputs (the instant
included): for a number, the account's sell deck and the carriers' buy decks, the carriers
a call tries, cheapest first.

Costs are the exact deck rating (connect fee, tiers, increments, bands at the instant,
rounded once per call with each deck's own method), in integer micro-units. A carrier is
profitable when its buy cost is not above the sell price at two durations: the shortest
answered call (1 s: connect fees and first increments weigh most there) and the granted
duration. Between those points tiered decks could cross; the two points are what is checked
(documented in the README)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rating.carriers import Carrier
from rating.deck import Deck
from rating.money import format_micro
from rating.tariff import NoRate, rate_call

NO_PROFITABLE_ROUTE = "NO_PROFITABLE_ROUTE"  # every carrier with a rate costs more than the sale
NO_ROUTE = "NO_ROUTE"  # carriers are configured but none can take the number
SHORTEST_S = 1


class Skip(StrEnum):
    """Why a carrier is not in the list (stable codes)."""

    DISABLED = "DISABLED"
    EXCLUDED = "EXCLUDED"
    NO_DECK = "NO_DECK"  # its buy deck is not published
    NO_RATE = "NO_RATE"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # buy and sell in different currencies
    UNPROFITABLE = "UNPROFITABLE"


class NoUsableRoute(LookupError):
    """No carrier may take the call: `code` is NO_ROUTE or NO_PROFITABLE_ROUTE."""

    def __init__(self, code: str, digits: str, plan: RoutePlan) -> None:
        super().__init__(f"{code}: no carrier for +{digits}")
        self.code = code
        self.digits = digits
        self.plan = plan


@dataclass(frozen=True, slots=True)
class Price:
    deck: str
    prefix: str
    name: str
    currency: str
    decimals: int
    cost: int  # micro-units for the granted duration
    shortest: int  # micro-units for an answered call of 1 s

    def as_dict(self) -> dict[str, Any]:
        return {
            "deck": self.deck,
            "prefix": self.prefix,
            "name": self.name,
            "currency": self.currency,
            "cost": format_micro(self.cost, self.decimals),
            "cost_micro": self.cost,
        }


@dataclass(frozen=True, slots=True)
class Route:
    carrier: str
    endpoint: str
    priority: int
    buy: Price
    margin: int  # sell - buy over the granted duration, micro-units (negative: a loss)

    def as_dict(self) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "endpoint": self.endpoint,
            "priority": self.priority,
            "cost": self.buy.as_dict()["cost"],
            "cost_micro": self.buy.cost,
            "margin_micro": self.margin,
            "deck": self.buy.deck,
            "prefix": self.buy.prefix,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    carrier: str
    why: Skip

    def as_dict(self) -> dict[str, str]:
        return {"carrier": self.carrier, "why": self.why.value}


@dataclass(frozen=True, slots=True)
class RoutePlan:
    digits: str
    at: datetime
    seconds: int
    sell: Price
    routes: tuple[Route, ...]
    skipped: tuple[Skipped, ...]
    loss_allowed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": f"+{self.digits}",
            "at": self.at.isoformat(),
            "seconds": self.seconds,
            "sell": self.sell.as_dict(),
            "routes": [r.as_dict() for r in self.routes],
            "skipped": [s.as_dict() for s in self.skipped],
            "loss_allowed": self.loss_allowed,
        }


@dataclass(frozen=True, slots=True)
class RouteRules:
    """Operator choices for this call: carriers tried first in this order (pin), carriers
    never tried (exclude), and whether a loss is accepted (account or prefix flag)."""

    pin: tuple[str, ...] = ()
    exclude: frozenset[str] = frozenset()
    allow_loss: bool = False


NO_RULES = RouteRules()


def price(deck: Deck, digits: str, at: datetime, seconds: int) -> Price:
    """The deck's price of an answered call of `seconds` (and of 1 s) starting at `at`."""
    full = rate_call(deck, digits, at, seconds, answered=True)
    short = rate_call(deck, digits, at, SHORTEST_S, answered=True)
    return Price(
        deck.name, full.prefix, full.name, deck.currency, deck.decimals, full.cost, short.cost
    )


def plan_routes(
    digits: str,
    sell: Deck,
    carriers: Sequence[tuple[Carrier, Deck | None]],
    at: datetime,
    seconds: int,
    rules: RouteRules = NO_RULES,
) -> RoutePlan:
    """The carriers to try, in order: pinned ones first (in pin order), then by buy cost over
    `seconds`, then priority (lower first), then name. Raises NoRate when the sell deck has
    no rate, NoUsableRoute when carriers exist but none may take the call. No carriers at
    all is the single-trunk setup: an empty list, no margin check."""
    if seconds < SHORTEST_S:
        raise ValueError("seconds must be >= 1")
    sold = price(sell, digits, at, seconds)
    routes: list[Route] = []
    skipped: list[Skipped] = []
    unprofitable = False
    for carrier, deck in carriers:
        why = _unusable(carrier, deck, sell, rules)
        buy: Price | None = None
        if why is None and deck is not None:
            try:
                buy = price(deck, digits, at, seconds)
            except NoRate:
                why = Skip.NO_RATE
        if buy is not None and not rules.allow_loss and not _profitable(sold, buy):
            why, unprofitable = Skip.UNPROFITABLE, True
        if why is not None or buy is None:
            skipped.append(Skipped(carrier.name, why or Skip.NO_DECK))
            continue
        routes.append(
            Route(carrier.name, carrier.endpoint, carrier.priority, buy, sold.cost - buy.cost)
        )
    pinned = {name: i for i, name in enumerate(rules.pin)}
    routes.sort(key=lambda r: (pinned.get(r.carrier, len(pinned)), r.buy.cost, r.priority,
                               r.carrier))  # fmt: skip
    skipped.sort(key=lambda s: s.carrier)
    plan = RoutePlan(digits, at, seconds, sold, tuple(routes), tuple(skipped), rules.allow_loss)
    if carriers and not routes:
        raise NoUsableRoute(NO_PROFITABLE_ROUTE if unprofitable else NO_ROUTE, digits, plan)
    return plan


def _unusable(carrier: Carrier, deck: Deck | None, sell: Deck, rules: RouteRules) -> Skip | None:
    if carrier.disabled:
        return Skip.DISABLED
    if carrier.name in rules.exclude:
        return Skip.EXCLUDED
    if deck is None:
        return Skip.NO_DECK
    if deck.currency != sell.currency:
        return Skip.CURRENCY_MISMATCH
    return None


def _profitable(sell: Price, buy: Price) -> bool:
    return buy.cost <= sell.cost and buy.shortest <= sell.shortest
