"""The routes preview (`tollgate routes` and the panel's `GET /api/v1/routes`): the plan
the authorization would compute for an account's call to a number at an instant, from what
Redis holds (carriers, rules, exchange rates, the decks in effect then), as one JSON-ready
document; a refusal is part of the answer (`refused`), not an error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from rating.deck_cache import DeckCache
from rating.keys import Keyspace
from rating.numbers import InvalidNumber, normalise
from rating.route_lookup import routes_for
from rating.routes import NoUsableRoute
from rating.tariff import NoRate


class RoutePreviewError(ValueError):
    """Why there is nothing to preview; names the field."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


async def preview(
    pool: asyncpg.Pool,
    redis: Redis,
    keys: Keyspace,
    account: str,
    to: str,
    at: datetime,
    seconds: int,
    *,
    no_rate_refused: bool = True,
) -> dict[str, Any]:
    """The plan as a document; a number the account's deck has no rate for is refused
    NO_RATE (or, no_rate_refused=False, raises NoRate: the CLI's own exit code)."""
    row = await pool.fetchrow("select deck, country from accounts where id = $1", account)
    if row is None:
        raise RoutePreviewError("account", f"unknown account {account!r}")
    if not row["deck"]:
        raise RoutePreviewError("account", f"account {account!r} has no deck: nothing is sold")
    if seconds < 1:
        raise RoutePreviewError("seconds", "must be at least 1")
    try:
        number = normalise(to, row["country"])
    except InvalidNumber as exc:
        raise RoutePreviewError("to", str(exc)) from None
    decks = DeckCache(redis, keys, 0.0)
    sell = await decks.current(row["deck"], at)
    if sell is None:
        raise RoutePreviewError("account", f"deck {row['deck']!r} is not published")
    try:
        plan = await routes_for(redis, keys, decks, account, sell, number.digits, at, seconds)
    except NoUsableRoute as exc:
        return {**exc.plan.as_dict(), "refused": exc.code}
    except NoRate:
        if not no_rate_refused:
            raise
        return {"number": number.e164, "at": at.isoformat(), "seconds": seconds, "sell": None,
                "routes": [], "skipped": [], "loss_allowed": False,
                "refused": "NO_RATE"}  # fmt: skip
    return {**plan.as_dict(), "refused": None}
