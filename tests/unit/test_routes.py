"""Least-cost routing and margin protection (rating.routes): worked examples with exact
costs, and properties over generated decks and carriers (hypothesis): the order, the money
and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.carriers import Carrier, CarrierError
from rating.deck import Deck, build_deck
from rating.routes import (
    NO_PROFITABLE_ROUTE,
    NO_ROUTE,
    NoUsableRoute,
    RouteRules,
    Skip,
    plan_routes,
)
from rating.tariff import NoRate, rate_call

# Friday 2026-11-20 10:00 UTC = 11:00 in Warsaw (winter time): the 'day' band.
FRIDAY_11 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
HEAD = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
BANDS = {"day": ["mon-fri 08:00-18:00"], "offpeak": ["sat-sun 00:00-24:00",
         "mon-fri 00:00-08:00", "mon-fri 18:00-24:00"]}  # fmt: skip


def deck(name: str, csv: str, currency: str = "PLN", bands: object = None) -> Deck:
    data = {"name": name, "currency": currency, "rates": "rates.csv", "bands": bands or {}}
    return build_deck(data, (HEAD + csv).encode(), manifest_file=f"{name}.toml",
                      rates_file="rates.csv")  # fmt: skip


SELL = deck("sell", "48,Poland,0,0.1200,60,60,0,*\n4860,Mobile,0,0.1900,60,1,0,*\n"
                    "49,Germany,0,0.2500,60,60,0,*\n")  # fmt: skip
CHEAP = deck("buy-cheap", "48,Poland,0,0.0300,60,1,0,*\n4860,Mobile,0,0.2500,60,1,0,*\n")
MID = deck("buy-mid", "48,Poland,0,0.0500,60,60,0,*\n4860,Mobile,0,0.0800,60,1,0,*\n"
                      "49,Germany,0,0.3000,60,60,0,*\n")  # fmt: skip
FEE = deck("buy-fee", "48,Poland,0.2000,0.0100,60,1,0,*\n")  # cheap per minute, dear to connect
EURO = deck("buy-eur", "48,Poland,0,0.0010,60,1,0,*\n", currency="EUR")


def carrier(name: str, d: Deck, **kw: object) -> Carrier:
    return Carrier(name, d.name, **kw)  # type: ignore[arg-type]


def test_cheapest_first_with_exact_costs_and_margins() -> None:
    plan = plan_routes(
        "48221234567", SELL, [(carrier("mid", MID), MID), (carrier("cheap", CHEAP), CHEAP)],
        FRIDAY_11, 90,
    )  # fmt: skip
    # sell: 60/60 at 0.12 -> 2 minutes = 0.24; cheap: 90 s at 0.03/min = 0.045; mid: 0.10
    assert plan.sell.cost == 240_000
    assert [(r.carrier, r.buy.cost, r.margin) for r in plan.routes] == [
        ("cheap", 45_000, 195_000),
        ("mid", 100_000, 140_000),
    ]
    assert plan.as_dict()["routes"][0]["cost"] == "0.0450"


def test_unprofitable_carriers_are_dropped_and_the_call_refused_when_none_is_left() -> None:
    both = [(carrier("cheap", CHEAP), CHEAP), (carrier("mid", MID), MID)]
    plan = plan_routes("48601234567", SELL, both, FRIDAY_11, 60)
    # mobile sells at 0.19/min: cheap buys at 0.25 (dropped), mid at 0.08
    assert [r.carrier for r in plan.routes] == ["mid"]
    assert [(s.carrier, s.why) for s in plan.skipped] == [("cheap", Skip.UNPROFITABLE)]
    with pytest.raises(NoUsableRoute) as refused:
        plan_routes("48601234567", SELL, both[:1], FRIDAY_11, 60)
    assert refused.value.code == NO_PROFITABLE_ROUTE
    allowed = plan_routes("48601234567", SELL, both[:1], FRIDAY_11, 60,
                          RouteRules(allow_loss=True))  # fmt: skip
    assert [(r.carrier, r.margin) for r in allowed.routes] == [("cheap", 190_000 - 250_000)]


def test_a_connect_fee_makes_short_calls_unprofitable() -> None:
    """Over 10 minutes the fee carrier is cheap (0.30 vs 1.20 sold), but a 1 s call costs
    0.20 to connect and sells for 0.12: checked at both ends, it is dropped."""
    with pytest.raises(NoUsableRoute) as refused:
        plan_routes("48221234567", SELL, [(carrier("fee", FEE), FEE)], FRIDAY_11, 600)
    assert refused.value.code == NO_PROFITABLE_ROUTE


def test_no_carrier_for_the_number_other_currencies_disabled_and_excluded() -> None:
    with pytest.raises(NoUsableRoute) as none:
        plan_routes("4930123456", SELL, [(carrier("cheap", CHEAP), CHEAP)], FRIDAY_11, 60)
    assert none.value.code == NO_ROUTE
    assert [(s.carrier, s.why) for s in none.value.plan.skipped] == [("cheap", Skip.NO_RATE)]
    listed = [
        (carrier("eur", EURO), EURO),
        (carrier("off", CHEAP, disabled=True), CHEAP),
        (carrier("gone", MID), None),
        (carrier("mid", MID), MID),
        (carrier("cheap", CHEAP), CHEAP),
    ]
    rules = RouteRules(exclude=frozenset({"cheap"}))
    plan = plan_routes("48221234567", SELL, listed, FRIDAY_11, 60, rules)
    assert [r.carrier for r in plan.routes] == ["mid"]
    assert {s.carrier: s.why for s in plan.skipped} == {
        "eur": Skip.CURRENCY_MISMATCH, "off": Skip.DISABLED, "gone": Skip.NO_DECK,
        "cheap": Skip.EXCLUDED,
    }  # fmt: skip


def test_pinned_carriers_come_first_and_no_carriers_is_the_single_trunk_case() -> None:
    both = [(carrier("cheap", CHEAP), CHEAP), (carrier("mid", MID), MID)]
    plan = plan_routes("48221234567", SELL, both, FRIDAY_11, 60, RouteRules(pin=("mid",)))
    assert [r.carrier for r in plan.routes] == ["mid", "cheap"]
    single = plan_routes("48221234567", SELL, [], FRIDAY_11, 60)
    assert single.routes == () and single.sell.cost == 120_000
    with pytest.raises(NoRate):
        plan_routes("3312345678", SELL, both, FRIDAY_11, 60)


def test_the_instant_chooses_the_band_on_both_sides() -> None:
    banded = deck("banded", "48,Poland,0,0.1000,60,60,0,day\n48,Poland,0,0.0100,60,60,0,offpeak\n",
                  bands=BANDS)  # fmt: skip
    offered = [(carrier("banded", banded), banded)]
    assert plan_routes("48221234567", SELL, offered, SATURDAY, 60).routes[0].buy.cost == 10_000
    assert plan_routes("48221234567", SELL, offered, FRIDAY_11, 60).routes[0].buy.cost == 100_000


def test_carrier_fields_are_checked() -> None:
    for kw, field in (({"trunk": "a,b"}, "trunk"), ({"priority": -1}, "priority"),
                      ({"max_calls": -2}, "max_calls")):  # fmt: skip
        with pytest.raises(CarrierError) as bad:
            Carrier("x", "d", **kw).checked()  # type: ignore[arg-type]
        assert bad.value.field == field
    with pytest.raises(CarrierError):
        Carrier("../x", "d").checked()


# -- properties ------------------------------------------------------------------------------

rate = st.integers(0, 5_000).map(lambda n: f"{n // 10000}.{n % 10000:04d}")
increment = st.sampled_from([1, 6, 30, 60])


@st.composite
def buy_deck(draw: st.DrawFn, index: int) -> tuple[Carrier, Deck]:
    fee = draw(st.integers(0, 500).map(lambda n: f"0.{n:04d}"))
    row = f"48,Poland,{fee},{draw(rate)},60,{draw(increment)},0,*\n"
    d = deck(f"b{index}", row)
    return Carrier(f"c{index}", d.name, priority=draw(st.integers(0, 3))), d


carriers_st = st.integers(1, 6).flatmap(lambda n: st.tuples(*(buy_deck(i) for i in range(n))))


@settings(max_examples=150, deadline=None)
@given(
    offered=carriers_st,
    seconds=st.integers(1, 7200),
    offset=st.integers(0, 7 * 24 * 3600),
    loss=st.booleans(),
)
def test_order_money_and_refusal_properties(
    offered: tuple[tuple[Carrier, Deck], ...], seconds: int, offset: int, loss: bool
) -> None:
    at = FRIDAY_11 + timedelta(seconds=offset)
    sell = rate_call(SELL, "48221234567", at, seconds, answered=True).cost
    short = rate_call(SELL, "48221234567", at, 1, answered=True).cost
    try:
        plan = plan_routes("48221234567", SELL, offered, at, seconds, RouteRules(allow_loss=loss))
    except NoUsableRoute as exc:
        assert not loss and exc.code == NO_PROFITABLE_ROUTE
        plan = exc.plan
    buys = {c.name: (rate_call(d, "48221234567", at, seconds, answered=True).cost,
                     rate_call(d, "48221234567", at, 1, answered=True).cost, c.priority)
            for c, d in offered}  # fmt: skip
    # every route costs exactly what the buy deck rates, integer micro-units, margin exact
    for r in plan.routes:
        assert isinstance(r.buy.cost, int) and r.buy.cost == buys[r.carrier][0]
        assert r.margin == sell - r.buy.cost
    # least cost, then priority, then name
    keys = [(r.buy.cost, r.priority, r.carrier) for r in plan.routes]
    assert keys == sorted(keys)
    # nothing is lost: each carrier is either routed or skipped, once
    assert sorted([r.carrier for r in plan.routes] + [s.carrier for s in plan.skipped]) == sorted(
        buys
    )
    # without the loss flag, only carriers not dearer than the sale at both ends can stay
    # (in between too: the scan property below checks that part exactly)
    profitable = {n for n, (full, one, _) in buys.items() if full <= sell and one <= short}
    routed = {r.carrier for r in plan.routes}
    assert routed == set(buys) if loss else routed <= profitable


def test_rules_combine_excludes_loss_and_the_most_specific_pin() -> None:
    from rating.route_rules import RouteRule, combine

    rules = [
        RouteRule("", "", pin=("a",)),
        RouteRule("", "48", exclude=("x",)),
        RouteRule("alice", "48", pin=("b", "c")),
        RouteRule("", "4860", pin=("d",), allow_loss=True),
        RouteRule("bob", "", exclude=("y",), allow_loss=True),
    ]
    assert combine(rules, "alice", "48221234567") == RouteRules(("b", "c"), frozenset({"x"}))
    assert combine(rules, "alice", "48601234567") == RouteRules(("d",), frozenset({"x"}), True)
    assert combine(rules, "bob", "4930123") == RouteRules(("a",), frozenset({"y"}), True)
    assert combine([], "bob", "4930123") == RouteRules()
    for bad, field in ((RouteRule(prefix="48x"), "prefix"), (RouteRule(pin=("a/b",)), "pin"),
                       (RouteRule(pin=("a",), exclude=("a",)), "pin")):  # fmt: skip
        with pytest.raises(CarrierError) as err:
            bad.checked()
        assert err.value.field == field
    assert RouteRule(prefix="+4870").checked().prefix == "4870"


def test_route_grants_are_shared_by_calls_that_price_alike() -> None:
    from rating.route_grants import RouteGrants

    grants = RouteGrants()
    buys = [(carrier("cheap", CHEAP), CHEAP), (carrier("mid", MID), MID)]
    warsaw = grants.spec("a", SELL, "48221234567", FRIDAY_11, 60, buys, [])
    assert warsaw == ("cheap:cheap:0:0;mid:mid:0:0", ("cheap", "mid"))
    assert grants.spec("a", SELL, "48229999999", FRIDAY_11, 60, buys, []) is warsaw
    mobile = grants.spec("a", SELL, "48601234567", FRIDAY_11, 60, buys, [])
    assert mobile == ("mid:mid:0:0", ("mid",))  # cheap is dearer than the sale
    assert grants.spec("a", SELL, "48601234567", FRIDAY_11, 60, buys[:1], []) == (
        "!NO_PROFITABLE_ROUTE", (),
    )  # fmt: skip
    from rating.route_rules import RouteRule

    lossy = [RouteRule("a", "4860", allow_loss=True)]
    assert grants.spec("a", SELL, "48601234567", FRIDAY_11, 60, buys[:1], lossy)[1] == ("cheap",)
    assert grants.spec("b", SELL, "48601234567", FRIDAY_11, 60, buys[:1], lossy)[1] == ()
    assert grants.spec("a", SELL, "3312345", FRIDAY_11, 60, buys, []) == ("", ())  # NO_RATE


# -- the margin between 1 s and the grant (tier boundaries) ----------------------------------

# Sells 2.00/min for the first 30 s, 0.01/min to 300 s, 5.00/min after; the carrier buys at
# 1.00/min flat. At 1 s (0.0334 vs 0.0167) and at an hour (276 vs 60) the sale is above the
# cost, but a call of 300 s sells for 1.045 and costs 5.00.
TIERED = deck("tiered", "48,Poland,0,2.0000,60,1,0,*\n48,Poland,0,0.0100,60,1,30,*\n"
                        "48,Poland,0,5.0000,60,1,300,*\n")  # fmt: skip
FLAT = deck("flat", "48,Poland,0,1.0000,60,1,0,*\n")


def test_a_tiered_sale_that_dips_below_cost_between_1s_and_the_grant_is_refused() -> None:
    from rating.routes import worst_margin

    offered = [(carrier("flat", FLAT), FLAT)]
    for t in (1, 3600):  # the two points checked before: both profitable
        assert (rate_call(TIERED, "48221234567", FRIDAY_11, t).cost
                >= rate_call(FLAT, "48221234567", FRIDAY_11, t).cost)  # fmt: skip
    assert worst_margin(TIERED, FLAT, "48221234567", FRIDAY_11, 3600) == (
        1_045_000 - 5_000_000, 300,
    )  # fmt: skip
    with pytest.raises(NoUsableRoute) as refused:
        plan_routes("48221234567", TIERED, offered, FRIDAY_11, 3600)
    assert refused.value.code == NO_PROFITABLE_ROUTE
    # a grant that ends before the dip is profitable throughout
    assert [r.carrier for r in plan_routes("48221234567", TIERED, offered, FRIDAY_11, 29)
            .routes] == ["flat"]  # fmt: skip


def test_a_sale_by_the_minute_below_a_per_second_cost_inside_the_first_minute() -> None:
    """60/60 at 0.12 against a per-second carrier at 0.13/min: a 90 s grant sells for 0.24
    and costs 0.195, 1 s sells for 0.12, but a call of exactly 60 s loses 0.01."""
    from rating.routes import worst_margin

    dear = deck("dear", "48,Poland,0,0.1300,60,1,0,*\n")
    assert worst_margin(SELL, dear, "48221234567", FRIDAY_11, 90) == (120_000 - 130_000, 60)
    with pytest.raises(NoUsableRoute):
        plan_routes("48221234567", SELL, [(carrier("dear", dear), dear)], FRIDAY_11, 90)


# Tiers with any increment whose per-second price is a whole number of 100 micro-units: no
# rounding ripple (each call's cost is exact at 4 decimals), so comparing every second is
# the truth the check points must agree with, increments included.
per_second = st.integers(0, 400).map(lambda n: f"{n * 60 // 10000}.{n * 60 % 10000:04d}")


@st.composite
def tiered(draw: st.DrawFn, name: str) -> Deck:
    starts = sorted(draw(st.sets(st.integers(1, 400), max_size=4)))
    fee = draw(st.sampled_from(["0", "0.0100", "0.0500"]))
    inc = st.sampled_from([1, 1, 6, 30, 60])
    rows = [f"48,Poland,{fee},{draw(per_second)},60,{draw(inc)},0,*\n"]
    rows += [f"48,Poland,{fee},{draw(per_second)},60,{draw(inc)},{s},*\n" for s in starts]
    return deck(name, "".join(rows))


@settings(max_examples=300, deadline=None)
@given(sell=tiered("s"), buy=tiered("b"), seconds=st.integers(1, 450))
def test_the_check_points_find_every_loss_a_second_by_second_scan_finds(
    sell: Deck, buy: Deck, seconds: int
) -> None:
    from rating.routes import cost_within, worst_margin

    def cost(d: Deck, t: int) -> int:
        return rate_call(d, "48221234567", FRIDAY_11, t).cost

    scanned = min(cost(sell, t) - cost(buy, t) for t in range(1, seconds + 1))
    # a shorter call's cost read from the longer call's rating is what rating it gives
    full = rate_call(buy, "48221234567", FRIDAY_11, seconds)
    assert [cost_within(full, buy, t) for t in range(1, seconds + 1)] == [
        cost(buy, t) for t in range(1, seconds + 1)
    ]
    worst = worst_margin(sell, buy, "48221234567", FRIDAY_11, seconds)
    assert worst is not None and worst[0] == scanned
    assert cost(sell, worst[1]) - cost(buy, worst[1]) == scanned
    offered = [(Carrier("b", "b"), buy)]
    try:
        kept = bool(plan_routes("48221234567", sell, offered, FRIDAY_11, seconds).routes)
    except NoUsableRoute:
        kept = False
    assert kept == (scanned >= 0)


@settings(max_examples=150, deadline=None)
@given(
    offset=st.integers(0, 7 * 24 * 3600),
    seconds=st.integers(1, 4 * 3600),
    inc=st.sampled_from([1, 6, 30, 60]),
    data=st.data(),
)
def test_a_shorter_calls_cost_read_from_a_longer_rating_is_its_own_rating(
    offset: int, seconds: int, inc: int, data: st.DataObject
) -> None:
    """Across band changes (day/offpeak at 18:00 and 08:00), tiers and any increment."""
    from rating.routes import cost_within

    banded = deck("bt", f"48,Poland,0.0100,0.1000,60,{inc},0,day\n"
                        f"48,Poland,0.0100,0.0330,60,{inc},0,offpeak\n"
                        "48,Poland,0.0100,0.0700,60,1,90,day\n", bands=BANDS)  # fmt: skip
    at = FRIDAY_11 + timedelta(seconds=offset)
    full = rate_call(banded, "48221234567", at, seconds)
    t = data.draw(st.integers(1, seconds))
    assert cost_within(full, banded, t) == rate_call(banded, "48221234567", at, t).cost
