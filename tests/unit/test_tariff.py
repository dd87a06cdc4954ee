"""Rating arithmetic, with the classic billing plans as worked examples.

The plans are the ones carriers and open billing systems document (CGRateS "RateUnit /
RateIncrement / GroupIntervalStart", A2Billing "billing block", the 60/60, 30/6 and 1/1
conventions): an X/Y plan bills a first block of X seconds, then blocks of Y seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from rating.deck import Deck, build_deck
from rating.money import Rounding
from rating.tariff import NoRate, grant_curve, rate_call

# Friday 2026-11-20 10:00 UTC = 11:00 in Warsaw (winter time, UTC+1).
FRIDAY_11 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def deck(csv: str, bands: dict[str, list[str]] | None = None, **manifest: object) -> Deck:
    head = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
    data = {"name": "t", "currency": "PLN", "rates": "rates.csv", "bands": bands or {}}
    data.update(manifest)
    return build_deck(data, (head + csv).encode(), manifest_file="t.toml", rates_file="rates.csv")


PLANS = deck(
    "1,per-minute 60/60,0,0.60,60,60,0,*\n"
    "2,30/6,0,0.60,60,30,0,*\n"
    "2,30/6,0,0.60,60,6,30,*\n"
    "3,per-second 1/1,0,0.60,60,1,0,*\n"
    "4,connect fee,0.15,0.60,60,60,0,*\n"
    "5,cheaper after 5 min,0,0.60,60,60,0,*\n"
    "5,cheaper after 5 min,0,0.30,60,60,300,*\n"
)


@pytest.mark.parametrize(
    ("prefix", "seconds", "billable", "cost"),
    [
        ("1", 1, 60, 600_000),
        ("1", 60, 60, 600_000),
        ("1", 61, 120, 1_200_000),
        ("2", 1, 30, 300_000),
        ("2", 30, 30, 300_000),
        ("2", 31, 36, 360_000),
        ("2", 125, 126, 1_260_000),
        ("3", 1, 1, 10_000),
        ("3", 125, 125, 1_250_000),
        ("4", 10, 60, 750_000),
        ("5", 301, 360, 3_300_000),
        ("5", 600, 600, 4_500_000),
    ],
)
def test_classic_plans(prefix: str, seconds: int, billable: int, cost: int) -> None:
    rated = rate_call(PLANS, prefix + "123", FRIDAY_11, seconds)
    assert (rated.billable_seconds, rated.cost) == (billable, cost)


def test_unanswered_calls_cost_nothing_not_even_the_connect_fee() -> None:
    rated = rate_call(PLANS, "4123", FRIDAY_11, 0)
    assert rated.cost == 0 and rated.billable_seconds == 0
    assert rate_call(PLANS, "4123", FRIDAY_11, 0, answered=True).cost == 150_000


def test_longest_prefix_wins() -> None:
    d = deck("48,Poland,0,0.10,60,60,0,*\n4850,mobile,0,0.20,60,60,0,*\n485,x,0,0.30,60,60,0,*\n")
    assert rate_call(d, "48501234567", FRIDAY_11, 60).prefix == "4850"
    assert rate_call(d, "48521234567", FRIDAY_11, 60).prefix == "485"
    assert rate_call(d, "48221234567", FRIDAY_11, 60).prefix == "48"
    with pytest.raises(NoRate):
        rate_call(d, "49301234567", FRIDAY_11, 60)


def test_total_is_rounded_once_per_call_not_per_increment() -> None:
    # 0.01 per minute by the second: one second is 166.67 micro-units.
    d = deck("9,x,0,0.01,60,1,0,*\n")
    rated = rate_call(d, "9", FRIDAY_11, 7)
    assert rated.exact == Fraction(7 * 10_000, 60)
    assert rated.cost == 1_200  # 0.0012 once; per-increment rounding would give 0.0014
    down = deck("9,x,0,0.01,60,1,0,*\n", rounding="down")
    half = deck("9,x,0,0.01,60,1,0,*\n", rounding="half-up")
    assert rate_call(down, "9", FRIDAY_11, 7).cost == 1_100
    assert rate_call(half, "9", FRIDAY_11, 7).cost == 1_200
    assert down.rounding is Rounding.DOWN


BANDS = {
    "day": ["mon-fri 08:00-18:00"],
    "evening": ["mon-fri 00:00-08:00", "mon-fri 18:00-24:00", "sat-sun 00:00-24:00"],
}


def test_call_crossing_a_band_boundary_is_rated_piecewise() -> None:
    d = deck("48,x,0.05,0.60,60,1,0,day\n48,x,0.10,0.30,60,1,0,evening\n", BANDS)
    start = datetime(2026, 11, 20, 16, 59, 0, tzinfo=UTC)  # 17:59 Warsaw
    rated = rate_call(d, "48221234567", start, 120)
    # 60 s at 0.60/min + 60 s at 0.30/min; connect fee of the band at second 0
    assert rated.cost == 50_000 + 600_000 + 300_000
    assert [(s.start_s, s.count, s.row.band) for s in rated.segments] == [
        (0, 60, "day"),
        (60, 60, "evening"),
    ]


def test_increment_started_before_the_boundary_keeps_its_rate() -> None:
    d = deck("48,x,0,0.60,60,60,0,day\n48,x,0,0.30,60,60,0,evening\n", BANDS)
    start = datetime(2026, 11, 20, 16, 59, 30, tzinfo=UTC)  # 17:59:30 Warsaw
    rated = rate_call(d, "48221234567", start, 61)
    # increment [0,60) starts in day, [60,120) starts in the evening
    assert rated.cost == 600_000 + 300_000


def test_specific_band_beats_star() -> None:
    d = deck("48,x,0,0.60,60,60,0,*\n48,x,0,0.10,60,60,0,evening\n", BANDS)
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert rate_call(d, "48221234567", saturday, 60).cost == 100_000
    assert rate_call(d, "48221234567", FRIDAY_11, 60).cost == 600_000


def test_bands_follow_the_decks_time_zone_across_dst() -> None:
    d = deck("48,x,0,0.60,60,60,0,day\n48,x,0,0.30,60,60,0,evening\n", BANDS)
    # 2026-03-30 is a Monday in summer time (UTC+2): 07:30 UTC = 09:30 Warsaw = day
    assert rate_call(d, "48221234567", datetime(2026, 3, 30, 7, 30, tzinfo=UTC), 60).cost == 600_000
    # 2026-03-27 is a Friday in winter time (UTC+1): 06:30 UTC = 07:30 Warsaw = evening
    assert rate_call(d, "48221234567", datetime(2026, 3, 27, 6, 30, tzinfo=UTC), 60).cost == 300_000


def test_grant_curve_counts_increments_to_the_cap() -> None:
    rates = PLANS.lookup("2123")
    assert rates is not None
    curve = grant_curve(PLANS, rates, FRIDAY_11, 100)
    # one 30 s block, then 6 s blocks starting before second 100: 30,36,...,96 -> 12 blocks;
    # amounts are in 1/60 micro-units (the rate unit), exact integers
    assert curve.denominator == 60
    assert curve.encode() == "up,60,0,100,100,2,0,30,1,18000000,30,6,12,3600000"
    assert curve.steps == ((0, 30, 1, 300_000 * 60), (30, 6, 12, 60_000 * 60))
    assert curve.cap_s == 100


@pytest.mark.parametrize("micro", [1, 250_000, 999_999])
def test_grant_curve_is_the_same_for_every_instant_of_a_second(micro: int) -> None:
    """The ledger computes one curve per second (it was a sixth of authorize's CPU): bands
    change on whole minutes, so the start of the second gives the same curve, also for a
    call that crosses a band boundary."""
    d = deck("48,x,0.05,0.60,60,1,0,day\n48,x,0.10,0.30,60,6,0,evening\n", BANDS)
    rates = d.lookup("48221234567")
    assert rates is not None
    second = datetime(2026, 11, 20, 16, 59, 58, tzinfo=UTC)  # 2 s before the evening band
    exact = grant_curve(d, rates, second.replace(microsecond=micro), 600)
    assert exact == grant_curve(d, rates, second, 600)
    assert len(exact.steps) == 2 and exact.steps[1][0] == 2
