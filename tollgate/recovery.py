"""Start-up: bring Redis up to date from PostgreSQL, including after Redis lost its data.

PostgreSQL holds the decks, the account settings, every ledger entry and (through the CDR
writer) every call's cost. An account missing from Redis is rebuilt from all of them: its
balance is the entries minus the costs of its CDRs, never the entries alone."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rating.deck_store import publish_all
from tollgate.services import Services

log = logging.getLogger("tollgate.recovery")


@dataclass(frozen=True, slots=True)
class CatchUp:
    decks: int
    entries: int
    rebuilt: tuple[str, ...]  # accounts Redis had lost


async def catch_up(s: Services) -> CatchUp:
    pool = s.pool
    assert pool is not None
    async with pool.acquire() as conn:
        decks = await publish_all(conn, s.redis, s.settings.keyspace)
    ids = [r["id"] for r in await pool.fetch("select id from accounts order by id")]
    entries = 0
    rebuilt: list[str] = []
    has_cdrs = await pool.fetchval("select to_regclass('cdrs') is not null")
    for account in ids:
        lost = not await s.redis.exists(s.settings.keyspace.account(account))
        entries += await s.accounts.sync(account)
        if lost and has_cdrs:
            spent = await pool.fetchval(
                "select coalesce(sum(cost), 0) from cdrs where account = $1", account
            )
            await s.ledger.script("restore_spent")(
                keys=[s.settings.keyspace.account(account)], args=[int(spent)]
            )
            rebuilt.append(account)
    if rebuilt:
        log.warning("rebuilt %d account(s) Redis had lost, from PostgreSQL", len(rebuilt))
    return CatchUp(decks, entries, tuple(rebuilt))
