"""The inputs of `routes.plan_routes` as the authorization sees them: the carriers' copy in
Redis and the decks Redis serves as current (through the process's deck cache)."""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from rating.carrier_store import mirrored_carriers, mirrored_fx, mirrored_rules
from rating.carriers import Carrier
from rating.deck import Deck
from rating.deck_cache import DeckCache
from rating.keys import Keyspace
from rating.route_rules import combine
from rating.routes import RoutePlan, plan_routes


async def buy_decks(
    redis: Redis, keys: Keyspace, decks: DeckCache, at: datetime
) -> list[tuple[Carrier, Deck | None]]:
    """Every mirrored carrier with its buy deck in effect at `at` (None: not published)."""
    carriers = await mirrored_carriers(redis, keys) or []
    return [(c, await decks.current(c.deck, at)) for c in carriers]


async def routes_for(
    redis: Redis,
    keys: Keyspace,
    decks: DeckCache,
    account: str,
    sell: Deck,
    digits: str,
    at: datetime,
    seconds: int,
) -> RoutePlan:
    """The plan for the account's call to `digits`, with the operator's rules for it."""
    rules = combine(await mirrored_rules(redis, keys), account, digits)
    buys = await buy_decks(redis, keys, decks, at)
    return plan_routes(digits, sell, buys, at, seconds, rules, await mirrored_fx(redis, keys))
