"""Least-cost routing and margin protection, as a pure function of its inputs (the instant
included): for a number, the account's sell deck and the carriers' buy decks, the carriers
a call tries, cheapest first.

Costs are the exact deck rating (connect fee, tiers, increments, bands at the instant,
rounded once per call with each deck's own method), in integer micro-units. A buy deck in
another currency is converted into the sell currency with the exchange rate in force at
the instant (rating.fx: exact, rounded up to the micro-unit); without a rate the carrier is
skipped (CURRENCY_MISMATCH).

A carrier is profitable when its buy cost is not above the sell price for every answered
call up to the granted duration: the shortest (1 s: connect fees and first increments weigh
most there), the granted one, and every length in between where a tiered deck or the two
decks' increments could cross (see `check_points`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any

from rating.carriers import Carrier
from rating.deck import Deck
from rating.fx import NO_FX, FxTable
from rating.money import format_micro, round_micro
from rating.tariff import NoRate, RatedCall, rate_call

NO_PROFITABLE_ROUTE = "NO_PROFITABLE_ROUTE"  # every carrier with a rate costs more than the sale
NO_ROUTE = "NO_ROUTE"  # carriers are configured but none can take the number
SHORTEST_S = 1


class Skip(StrEnum):
    """Why a carrier is not in the list (stable codes)."""

    DISABLED = "DISABLED"
    EXCLUDED = "EXCLUDED"
    NO_DECK = "NO_DECK"  # its buy deck is not published
    NO_RATE = "NO_RATE"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # another currency and no exchange rate for it
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
    cost: int  # micro-units for the granted duration (in the sell currency)
    shortest: int  # micro-units for an answered call of 1 s
    # a buy price in another currency: the deck's own currency, its cost in it and the rate
    deck_currency: str = ""
    deck_cost: int = 0
    fx_rate: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deck": self.deck,
            "prefix": self.prefix,
            "name": self.name,
            "currency": self.currency,
            "cost": format_micro(self.cost, self.decimals),
            "cost_micro": self.cost,
        }
        if self.deck_currency:
            out["deck_currency"] = self.deck_currency
            out["deck_cost"] = format_micro(self.deck_cost, self.decimals)
            out["fx_rate"] = self.fx_rate
        return out


@dataclass(frozen=True, slots=True)
class Route:
    carrier: str
    endpoint: str
    priority: int
    buy: Price
    margin: int  # sell - buy over the granted duration, micro-units (negative: a loss)

    def as_dict(self) -> dict[str, Any]:
        buy = self.buy.as_dict()
        out = {
            "carrier": self.carrier,
            "endpoint": self.endpoint,
            "priority": self.priority,
            "cost": buy["cost"],
            "cost_micro": self.buy.cost,
            "margin_micro": self.margin,
            "deck": self.buy.deck,
            "prefix": self.buy.prefix,
        }
        out.update({k: buy[k] for k in ("deck_currency", "deck_cost", "fx_rate") if k in buy})
        return out


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
    return price_of(deck, rate_call(deck, digits, at, seconds, answered=True))


def price_of(deck: Deck, full: RatedCall) -> Price:
    short = cost_within(full, deck, SHORTEST_S)
    return Price(deck.name, full.prefix, full.name, deck.currency, deck.decimals, full.cost,
                 short)  # fmt: skip


def converted(buy: Price, currency: str, fx: FxTable, at: datetime) -> Price | None:
    """`buy` in `currency` with the rate in force at `at` (None: no rate known)."""
    if buy.currency == currency:
        return buy
    factor = fx.factor(buy.currency, currency, at)
    cost = fx.convert(buy.cost, buy.currency, currency, at)
    shortest = fx.convert(buy.shortest, buy.currency, currency, at)
    if factor is None or cost is None or shortest is None:
        return None
    rate = f"{factor.numerator}/{factor.denominator}" if factor.denominator != 1 else str(factor)
    exact = fx.in_force(buy.currency, currency, at)
    return Price(buy.deck, buy.prefix, buy.name, currency, buy.decimals, cost, shortest,
                 buy.currency, buy.cost, exact.rate if exact else rate)  # fmt: skip


def check_points(sell: RatedCall, buy: RatedCall) -> list[int]:
    """The call lengths where sell - buy can be smallest, ascending (both rated for the same
    duration). The difference only falls when a buy increment starts and only rises when a
    sell increment starts, so its minimum is at the end of a sell increment (or at the
    grant): 1 s, the grant, each side of every tier or band start, and, wherever both decks
    keep one row, the first and last `p` sell increment ends (p = buy increment / gcd of
    the two increments): past p the buy side's rounding to its increments repeats, so each
    residue's margins are linear and smallest at an end. Exact before each call's single
    rounding (which can move a margin by one step of a deck's decimals)."""
    longest = sell.seconds
    points = {SHORTEST_S, longest}
    for r in (sell, buy):
        for seg in r.segments:
            points.update(p for p in (seg.start_s, seg.start_s + 1) if SHORTEST_S < p < longest)
    for s in sell.segments:
        for b in buy.segments:
            lo, hi = max(s.start_s, b.start_s), min(s.end_s, b.end_s, longest)
            if lo >= hi:
                continue
            first = (lo - s.start_s) // s.increment_s + 1  # the first increment ending past lo
            last = (hi - s.start_s) // s.increment_s  # the last one ending by hi
            period = b.increment_s // math.gcd(s.increment_s, b.increment_s)
            ends = {*range(first, min(first + period, last + 1)),
                    *range(max(last - period + 1, first), last + 1)}  # fmt: skip
            points.update(s.start_s + m * s.increment_s for m in ends)
    return sorted(p for p in points if SHORTEST_S <= p <= longest)


def cost_within(full: RatedCall, deck: Deck, seconds: int) -> int:
    """What an answered call of `seconds` (at most the rated call's) costs, from the rated
    longer call: rating goes increment by increment from the answer, so the shorter call is
    billed the increments of `full` that start before `seconds` (the same as rate_call for
    it, without rating again), rounded once with the deck's method."""
    exact = Fraction(full.connect_fee)
    for seg in full.segments:
        if seg.start_s >= seconds:
            break
        count = min(seg.count, -(-(seconds - seg.start_s) // seg.increment_s))
        exact += Fraction(count * seg.increment_s * seg.row.rate, seg.row.rate_unit_s)
    return round_micro(exact, deck.decimals, deck.rounding)


def worst_margin(
    sell: Deck, buy: Deck, digits: str, at: datetime, seconds: int, fx: FxTable = NO_FX
) -> tuple[int, int] | None:
    """(smallest sell - buy in the sell currency, the call length where it is) over the
    check points up to `seconds`; None when the buy side cannot be converted. Raises NoRate
    when either deck has no rate for the number."""
    full_sell = rate_call(sell, digits, at, seconds, answered=True)
    full_buy = rate_call(buy, digits, at, seconds, answered=True)
    return worst_of(sell, full_sell, buy, full_buy, at, fx)


def worst_of(
    sell: Deck, full_sell: RatedCall, buy: Deck, full_buy: RatedCall, at: datetime, fx: FxTable
) -> tuple[int, int] | None:
    """worst_margin from the two decks' ratings of the same (granted) duration."""
    worst: tuple[int, int] | None = None
    for t in check_points(full_sell, full_buy):
        sold = cost_within(full_sell, sell, t)
        cost = fx.convert(cost_within(full_buy, buy, t), buy.currency, sell.currency, at)
        if cost is None:
            return None
        if worst is None or sold - cost < worst[0]:
            worst = (sold - cost, t)
    return worst


def plan_routes(
    digits: str,
    sell: Deck,
    carriers: Sequence[tuple[Carrier, Deck | None]],
    at: datetime,
    seconds: int,
    rules: RouteRules = NO_RULES,
    fx: FxTable = NO_FX,
) -> RoutePlan:
    """The carriers to try, in order: pinned ones first (in pin order), then by buy cost over
    `seconds` (in the sell currency), then priority (lower first), then name. Raises NoRate
    when the sell deck has no rate, NoUsableRoute when carriers exist but none may take the
    call. No carriers at all is the single-trunk setup: an empty list, no margin check."""
    if seconds < SHORTEST_S:
        raise ValueError("seconds must be >= 1")
    full_sell = rate_call(sell, digits, at, seconds, answered=True)
    sold = price_of(sell, full_sell)
    routes: list[Route] = []
    skipped: list[Skipped] = []
    unprofitable = False
    for carrier, deck in carriers:
        why = _unusable(carrier, deck, sell, rules, fx, at)
        buy: Price | None = None
        full_buy: RatedCall | None = None
        if why is None and deck is not None:
            try:
                full_buy = rate_call(deck, digits, at, seconds, answered=True)
                buy = converted(price_of(deck, full_buy), sell.currency, fx, at)
            except NoRate:
                why = Skip.NO_RATE
        if buy is not None and deck is not None and full_buy is not None and not (
            rules.allow_loss or _profitable(sell, full_sell, deck, full_buy, at, fx)
        ):
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


def _unusable(
    carrier: Carrier, deck: Deck | None, sell: Deck, rules: RouteRules, fx: FxTable, at: datetime
) -> Skip | None:
    if carrier.disabled:
        return Skip.DISABLED
    if carrier.name in rules.exclude:
        return Skip.EXCLUDED
    if deck is None:
        return Skip.NO_DECK
    if fx.factor(deck.currency, sell.currency, at) is None:
        return Skip.CURRENCY_MISMATCH
    return None


def _profitable(
    sell: Deck, full_sell: RatedCall, buy: Deck, full_buy: RatedCall, at: datetime, fx: FxTable
) -> bool:
    worst = worst_of(sell, full_sell, buy, full_buy, at, fx)
    return worst is not None and worst[0] >= 0
