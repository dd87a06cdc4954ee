"""The route argument of the authorize script, computed once per second for calls that
price alike: rating depends on the prefix each deck matches, not on the rest of the number,
so calls of the same second to numbers matching the same prefixes of the sell deck and of
every buy deck, under the same rules and cap, get the same carriers in the same order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rating.carriers import Carrier
from rating.deck import Deck
from rating.fx import NO_FX, FxTable
from rating.route_rules import RouteRule, combine
from rating.routes import NoUsableRoute, RouteRules, plan_routes
from rating.tariff import NoRate

_Key = tuple[object, ...]


class RouteGrants:
    def __init__(self) -> None:
        self._second = 0
        self._specs: dict[_Key, tuple[str, tuple[str, ...]]] = {}

    def spec(
        self,
        account: str,
        sell: Deck,
        digits: str,
        now: datetime,
        cap: int,
        buys: Sequence[tuple[Carrier, Deck | None]],
        rules: Sequence[RouteRule],
        fx: FxTable = NO_FX,
    ) -> tuple[str, tuple[str, ...]]:
        """('' | '!CODE' | 'carrier:endpoint:max_calls:cps;...', carriers in try order)."""
        second = int(now.timestamp())
        if second != self._second:
            self._specs.clear()
            self._second = second
        applied = combine(rules, account, digits)
        key = (sell.name, sell.version, _prefix(sell, digits), cap, applied, fx.ident,
               *((c, d.version, _prefix(d, digits)) if d else (c,) for c, d in buys))  # fmt: skip
        found = self._specs.get(key)
        if found is None:
            start = datetime.fromtimestamp(second, UTC)
            found = self._specs[key] = _spec(sell, digits, start, cap, buys, applied, fx)
        return found


def _prefix(deck: Deck, digits: str) -> str:
    rates = deck.lookup(digits)
    return "" if rates is None else rates.prefix


def _spec(
    sell: Deck,
    digits: str,
    start: datetime,
    cap: int,
    buys: Sequence[tuple[Carrier, Deck | None]],
    rules: RouteRules,
    fx: FxTable,
) -> tuple[str, tuple[str, ...]]:
    try:
        plan = plan_routes(digits, sell, buys, start, cap, rules, fx)
    except NoUsableRoute as exc:
        return f"!{exc.code}", ()
    except NoRate:
        return "", ()  # the sell side has no rate: the script refuses NO_RATE
    limit = {c.name: f"{c.max_calls}:{c.cps}" for c, _ in buys}
    spec = ";".join(f"{r.carrier}:{r.endpoint}:{limit[r.carrier]}" for r in plan.routes)
    return spec, tuple(r.carrier for r in plan.routes)
