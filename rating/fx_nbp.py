"""The National Bank of Poland's table A of average exchange rates, in the XML its API
serves (`/api/exchangerates/tables/A?format=xml`): each rate is 1 unit of the currency in
PLN (the API gives per-unit mids, also for currencies the printed table quotes per 100).

A table is published around noon of its date; its rates take effect at the next midnight in
Warsaw unless the operator names another instant, so no process prices a call that has
already started with a rate published after it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree

from rating.fx import FxError, FxRate, parse_currency, parse_rate

WARSAW = ZoneInfo("Europe/Warsaw")
QUOTE = "PLN"


def nbp_effective(table_date: date) -> datetime:
    """Midnight in Warsaw after the table's date."""
    return datetime.combine(table_date + timedelta(days=1), time(0), WARSAW)


def read_nbp(path: str | Path, effective_at: datetime | None = None) -> list[FxRate]:
    """Every (currency -> PLN) rate of each table in the file; FxError naming the file and
    line of what is wrong (nothing is returned then)."""
    name = str(path)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.parse(name, parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise FxError(name, f"not an NBP table XML: {exc}") from None
    tables = [root] if root.tag == "ExchangeRatesTable" else list(root.iter("ExchangeRatesTable"))
    if not tables:
        raise FxError(name, "no ExchangeRatesTable element")
    return [r for t in tables for r in _table(name, t, effective_at)]


def _text(name: str, node: etree._Element, tag: str) -> str:
    found = node.find(tag)
    if found is None or not (found.text or "").strip():
        raise FxError(f"{name}:{node.sourceline}", f"missing <{tag}>")
    return (found.text or "").strip()


def _table(name: str, table: etree._Element, effective_at: datetime | None) -> Iterable[FxRate]:
    kind = _text(name, table, "Table")
    if kind != "A":
        raise FxError(f"{name}:{table.sourceline}", f"table {kind!r}: only table A (mid rates)")
    raw = _text(name, table, "EffectiveDate")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise FxError(f"{name}:{table.sourceline}", f"EffectiveDate {raw!r}") from None
    at = effective_at or nbp_effective(day)
    rates = table.find("Rates")
    for rate in [] if rates is None else rates.iter("Rate"):
        where = f"{name}:{rate.sourceline}"
        try:
            code = parse_currency(_text(name, rate, "Code"), "Code")
            mid = parse_rate(_text(name, rate, "Mid"))
        except FxError as exc:
            raise FxError(where, exc.why) from None
        yield FxRate(code, QUOTE, mid, at).checked()
