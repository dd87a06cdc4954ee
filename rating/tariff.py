"""Rating: how much a call of N seconds costs under a deck, exactly.

Billable time is consumed increment by increment. The increment that starts at second t
of the call uses the tier with the largest from_s <= t among the rows of the band in force
at that instant (a specific band beats '*'). Consecutive increments with the same row form
a Segment, so rating costs O(tier and band changes), not O(seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from rating.deck import Deck, PrefixRates, RateRow
from rating.money import quantum, round_micro

# Lua numbers are doubles: every integer the grant script sees must stay below 2**53.
LUA_SAFE = 2**50


class NoRate(LookupError):
    """No prefix of the deck matches, or no row is in force at some moment of the call."""

    def __init__(self, digits: str, why: str) -> None:
        super().__init__(f"no rate for {digits}: {why}")
        self.digits = digits
        self.why = why


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: int  # offset from answer of the first increment
    increment_s: int
    count: int  # number of increments
    row: RateRow

    @property
    def end_s(self) -> int:
        return self.start_s + self.increment_s * self.count

    def cost(self) -> Fraction:
        return Fraction(self.count * self.increment_s * self.row.rate, self.row.rate_unit_s)


@dataclass(frozen=True, slots=True)
class RatedCall:
    prefix: str
    name: str
    currency: str
    seconds: int  # what the switch reported
    billable_seconds: int  # rounded up to whole increments
    connect_fee: int
    exact: Fraction  # micro-units, unrounded
    cost: int  # micro-units, rounded once with the deck's method
    segments: tuple[Segment, ...]


def segments(rates: PrefixRates, deck: Deck, answer_at: datetime, seconds: int) -> list[Segment]:
    """The increments a call of `seconds` answered at `answer_at` is billed for."""
    out: list[Segment] = []
    t = 0
    while t < seconds:
        instant = answer_at + timedelta(seconds=t)
        band = deck.clock.band_at(instant)
        rows = rates.rows_for(band)
        tier_index = _tier_index(rows, t)
        if tier_index < 0:
            raise NoRate(rates.prefix, f"no row in force at {instant.isoformat()}")
        row = rows[tier_index]
        end = seconds
        if tier_index + 1 < len(rows):
            end = min(end, rows[tier_index + 1].from_s)
        change = deck.clock.next_change(instant)
        if change is not None:
            end = min(end, t + math.ceil((change - instant).total_seconds()))
        count = max(1, math.ceil((end - t) / row.increment_s))
        if out and out[-1].row is row and out[-1].end_s == t:
            prev = out.pop()
            out.append(Segment(prev.start_s, row.increment_s, prev.count + count, row))
        else:
            out.append(Segment(t, row.increment_s, count, row))
        t += count * row.increment_s
    return out


def _tier_index(rows: tuple[RateRow, ...], t: int) -> int:
    index = -1
    for i, row in enumerate(rows):
        if row.from_s <= t:
            index = i
        else:
            break
    return index


def connect_row(rates: PrefixRates, deck: Deck, answer_at: datetime) -> RateRow:
    rows = rates.rows_for(deck.clock.band_at(answer_at))
    if not rows:
        raise NoRate(rates.prefix, f"no row in force at {answer_at.isoformat()}")
    return rows[0]


def rate_call(
    deck: Deck, digits: str, answer_at: datetime, seconds: int, *, answered: bool | None = None
) -> RatedCall:
    """Rate a call to E.164 `digits`. Unanswered calls cost 0; the total is rounded once."""
    rates = deck.lookup(digits)
    if rates is None:
        raise NoRate(digits, f"no prefix of deck {deck.name!r} matches")
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    answered = seconds > 0 if answered is None else answered
    if not answered:
        return RatedCall(rates.prefix, rates.name, deck.currency, 0, 0, 0, Fraction(0), 0, ())
    segs = tuple(segments(rates, deck, answer_at, seconds))
    fee = connect_row(rates, deck, answer_at).connect_fee
    exact = Fraction(fee) + sum((s.cost() for s in segs), Fraction(0))
    billable = segs[-1].end_s if segs else 0
    return RatedCall(
        rates.prefix,
        rates.name,
        deck.currency,
        seconds,
        billable,
        fee,
        exact,
        round_micro(exact, deck.decimals, deck.rounding),
        segs,
    )


@dataclass(frozen=True, slots=True)
class Curve:
    """Cost as a function of granted seconds, in integers the ledger's Lua can use exactly.

    Amounts are in 1/denominator micro-units. The ledger finds the longest duration whose
    rounded cost fits the available credit, ending on an increment boundary or at cap_s.
    """

    denominator: int
    connect: int
    quantum: int  # micro-units of one step of the deck's rounding
    rounding: str
    cap_s: int
    steps: tuple[tuple[int, int, int, int], ...]  # (start_s, increment_s, count, per_increment)

    def encode(self) -> str:
        """One script argument: fewer arguments are cheaper to send than many."""
        flat = [self.denominator, self.connect, self.quantum, self.cap_s, len(self.steps)]
        for step in self.steps:
            flat.extend(step)
        return ",".join([self.rounding, *map(str, flat)])


def grant_curve(deck: Deck, rates: PrefixRates, start_at: datetime, cap_s: int) -> Curve:
    """The curve for a call expected to start at `start_at`, up to `cap_s` seconds."""
    segs = segments(rates, deck, start_at, cap_s)
    denominator = math.lcm(*(s.row.rate_unit_s for s in segs)) if segs else 1
    connect = connect_row(rates, deck, start_at).connect_fee * denominator
    steps: list[tuple[int, int, int, int]] = []
    total = connect
    for seg in segs:
        per = seg.increment_s * seg.row.rate * (denominator // seg.row.rate_unit_s)
        count = seg.count
        if per and total + per * count > LUA_SAFE:  # absurd rates: grant less, never overflow
            count = (LUA_SAFE - total) // per
        if count <= 0:
            break
        steps.append((seg.start_s, seg.increment_s, count, per))
        total += per * count
        if count < seg.count:
            cap_s = min(cap_s, seg.start_s + count * seg.increment_s)
            break

    return Curve(
        denominator, connect, quantum(deck.decimals), deck.rounding.value, cap_s, tuple(steps)
    )
