"""Start-up and running repair: keep Redis in step with PostgreSQL.

PostgreSQL holds the decks, the account settings, every ledger entry and (through the CDR
writer) every call's cost. At start every deck is published and every account that drifted
is repaired (rating/repair.py): entries applied, settings mirrored, an account Redis lost
rebuilt as its entries minus the costs of its CDRs, never the entries alone. While serving,
the same check runs every TOLLGATE_REPAIR_INTERVAL_S, so an account left behind by a Redis
failure during `account create`/`topup` is mended without an operator, and counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from rating.carrier_store import CarrierStore, mirrored_carriers
from rating.deck_store import publish_all
from rating.repair import Drift, Repair, repair_all
from runtime.services import Services

log = logging.getLogger("runtime.recovery")


@dataclass(frozen=True, slots=True)
class CatchUp:
    decks: int
    repairs: tuple[Repair, ...]
    carriers: int = 0

    @property
    def entries(self) -> int:
        return sum(r.entries for r in self.repairs)

    @property
    def rebuilt(self) -> tuple[str, ...]:  # accounts Redis had lost
        return tuple(r.account for r in self.repairs if r.drift is Drift.REBUILT)


async def catch_up(s: Services) -> CatchUp:
    pool = s.pool
    assert pool is not None
    async with pool.acquire() as conn:
        decks = await publish_all(conn, s.redis, s.settings.keyspace)
    carriers = await CarrierStore(pool, s.redis, s.settings.keyspace).mirror()
    repairs = await repair_all(s.accounts)
    if repairs:
        log.warning(
            "repaired %d account(s) Redis was behind on: %s",
            len(repairs),
            ", ".join(f"{r.account} ({r.drift})" for r in repairs),
        )
    return CatchUp(decks, tuple(repairs), carriers)


async def repair_forever(
    s: Services, interval_s: float, on_repair: Callable[[Repair], None]
) -> None:
    """Check every account against PostgreSQL every `interval_s` and mend what drifted."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            for r in await repair_all(s.accounts):
                log.warning("repaired %s in Redis: %s, %d entries", r.account, r.drift, r.entries)
                on_repair(r)
            await _carriers_back(s)
        except (OSError, RedisError, asyncpg.PostgresError) as exc:
            log.error("repair: a store is unreachable, next try in %g s: %s", interval_s, exc)


async def _carriers_back(s: Services) -> None:
    """The carriers' copy, written again when Redis lost it."""
    assert s.pool is not None
    if await mirrored_carriers(s.redis, s.settings.keyspace) is None:
        found = await CarrierStore(s.pool, s.redis, s.settings.keyspace).mirror()
        if found:
            log.warning("carriers' copy was missing in Redis: %d carrier(s) written again", found)
