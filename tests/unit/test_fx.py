"""Exchange rates (rating.fx): exact conversion of integer micro-units with the rate in force
at the instant, rounded up; the NBP table A reader; and routing across currencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.carriers import Carrier
from rating.fx import FxError, FxRate, FxTable, fx_from_json, fx_to_json, parse_rate
from rating.fx_nbp import read_nbp
from rating.routes import NoUsableRoute, Skip, plan_routes
from tests.unit.test_routes import FRIDAY_11, SELL, deck

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
EUR_PLN = FxRate("EUR", "PLN", "4.3125", T0)


def test_the_rate_in_force_at_the_instant_and_the_inverse_direction() -> None:
    later = FxRate("EUR", "PLN", "4.5", T0 + timedelta(days=1))
    table = FxTable.of([later, EUR_PLN])
    assert table.convert(1_000_000, "EUR", "PLN", T0 - timedelta(seconds=1)) is None
    assert table.convert(1_000_000, "EUR", "PLN", T0) == 4_312_500
    assert table.convert(1_000_000, "EUR", "PLN", T0 + timedelta(days=1)) == 4_500_000
    # PLN -> EUR divides: 1 PLN = 1/4.3125 EUR = 0.231884057... -> rounded up
    assert table.convert(1_000_000, "PLN", "EUR", T0) == 231_885
    assert table.convert(7, "PLN", "PLN", T0) == 7
    assert table.convert(1, "USD", "PLN", T0) is None


def test_rates_are_checked_and_kept_as_exact_strings() -> None:
    assert parse_rate("4.312500") == "4.3125"
    assert parse_rate("4,3125") == "4.3125"
    assert parse_rate("0.000000000001") == "0.000000000001"
    for bad in ("-1", "0", "1e3", "4.3.1", "", "1_000", "0.0000000000001", "nan"):
        with pytest.raises(FxError) as err:
            parse_rate(bad)
        assert err.value.field == "rate"
    with pytest.raises(FxError) as same:
        FxRate("EUR", "EUR", "1", T0).checked()
    assert same.value.field == "quote"
    with pytest.raises(FxError) as naive:
        FxRate("EUR", "PLN", "1", datetime(2026, 1, 1)).checked()
    assert naive.value.field == "effective_at"


def test_the_redis_copy_round_trips_to_the_millisecond() -> None:
    odd = FxRate("USD", "PLN", "3.987654321012", T0 + timedelta(milliseconds=1))
    table = fx_from_json(fx_to_json([EUR_PLN, odd]))
    assert table.in_force("USD", "PLN", T0 + timedelta(milliseconds=1)) == odd
    assert table.in_force("USD", "PLN", T0) is None
    assert table.ident == FxTable.of([odd, EUR_PLN]).ident


rates = st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("999999999"),
                    places=12, allow_nan=False, allow_infinity=False)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(micro=st.integers(0, 10**15), rate=rates.filter(lambda d: d > 0), inverse=st.booleans())
def test_conversion_is_exact_and_rounded_up(micro: int, rate: Decimal, inverse: bool) -> None:
    text = parse_rate(format(rate, "f"))
    table = FxTable.of([FxRate("EUR", "PLN", text, T0)])
    base, quote = ("PLN", "EUR") if inverse else ("EUR", "PLN")
    got = table.convert(micro, base, quote, T0)
    assert isinstance(got, int)
    with localcontext() as ctx:  # an independent computation with enough digits
        ctx.prec = 80
        exact = Decimal(micro) / Decimal(text) if inverse else Decimal(micro) * Decimal(text)
        expected = int(exact.to_integral_value(rounding="ROUND_CEILING"))
    assert got == expected
    # never understated, never more than one micro-unit above the exact amount
    assert got >= exact > got - 1


NBP = """<?xml version="1.0" encoding="utf-8"?>
<ArrayOfExchangeRatesTable xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <ExchangeRatesTable>
    <Table>A</Table><No>233/A/NBP/2026</No><EffectiveDate>2026-12-01</EffectiveDate>
    <Rates>
      <Rate><Currency>euro</Currency><Code>EUR</Code><Mid>4.2345</Mid></Rate>
      <Rate><Currency>forint (Węgry)</Currency><Code>HUF</Code><Mid>0.010987</Mid></Rate>
    </Rates>
  </ExchangeRatesTable>
</ArrayOfExchangeRatesTable>
"""


def test_nbp_table_a(tmp_path: Path) -> None:
    f = tmp_path / "a.xml"
    f.write_text(NBP, encoding="utf-8")
    got = read_nbp(f)
    midnight = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # 00:00 on 2 December in Warsaw
    assert [(r.base, r.quote, r.rate, r.effective_at) for r in got] == [
        ("EUR", "PLN", "4.2345", midnight), ("HUF", "PLN", "0.010987", midnight),
    ]  # fmt: skip
    f.write_text(NBP.replace("0.010987", "0,01x"), encoding="utf-8")
    with pytest.raises(FxError) as bad:
        read_nbp(f)
    assert str(bad.value).startswith(f"{f}:7:")
    f.write_text(NBP.replace("<Table>A", "<Table>C"), encoding="utf-8")
    with pytest.raises(FxError, match="only table A"):
        read_nbp(f)


EURO = deck("buy-eur", "48,Poland,0,0.0200,60,1,0,*\n", currency="EUR")


def test_a_carrier_in_another_currency_is_routed_at_the_converted_cost() -> None:
    offered = [(Carrier("eu", EURO.name), EURO)]
    with pytest.raises(NoUsableRoute) as none:
        plan_routes("48221234567", SELL, offered, FRIDAY_11, 60)
    assert [(s.carrier, s.why) for s in none.value.plan.skipped] == [
        ("eu", Skip.CURRENCY_MISMATCH)
    ]
    fx = FxTable.of([FxRate("EUR", "PLN", "4.3125", FRIDAY_11 - timedelta(days=1))])
    plan = plan_routes("48221234567", SELL, offered, FRIDAY_11, 60, fx=fx)
    # 0.02 EUR x 4.3125 = 0.08625 PLN against 0.12 sold
    route = plan.routes[0]
    assert (route.buy.cost, route.buy.currency, route.margin) == (86_250, "PLN", 33_750)
    assert plan.as_dict()["routes"][0]["deck_cost"] == "0.0200"
    dear = FxTable.of([FxRate("EUR", "PLN", "6.5", FRIDAY_11 - timedelta(days=1))])
    with pytest.raises(NoUsableRoute) as lossy:  # 0.13 PLN > 0.12: unprofitable
        plan_routes("48221234567", SELL, offered, FRIDAY_11, 60, fx=dear)
    assert lossy.value.code == "NO_PROFITABLE_ROUTE"
