"""Carriers in PostgreSQL (the truth, one event row per change) and their copy in Redis (one
document the authorization reads), rewritten after every change and by `carrier sync`
(start-up, or Redis lost its data) the way decks and accounts are mirrored."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from core.pg import Conn
from rating.carriers import (
    Carrier,
    CarrierConflict,
    CarrierError,
    CarrierNotFound,
    carriers_from_json,
    carriers_to_json,
)
from rating.fx import FxTable, fx_from_json, fx_to_json
from rating.fx_store import list_fx
from rating.keys import Keyspace
from rating.route_rules import RouteRule, rules_from_json, rules_to_json

_COLUMNS = ("name", "deck", "trunk", "priority", "max_calls", "cps", "disabled", "csv_columns",
            "created_at", "updated_at")  # fmt: skip
CHANGEABLE = frozenset({"deck", "trunk", "priority", "max_calls", "cps", "disabled",
                        "csv_columns"})  # fmt: skip


def _carrier(row: asyncpg.Record) -> Carrier:
    return Carrier(**{c: row[c] for c in _COLUMNS})


async def get_carrier(conn: Conn | asyncpg.Pool, name: str) -> Carrier:
    row = await conn.fetchrow("select * from carriers where name = $1", name)
    if row is None:
        raise CarrierNotFound(name)
    return _carrier(row)


async def list_carriers(conn: Conn | asyncpg.Pool) -> list[Carrier]:
    return [_carrier(r) for r in await conn.fetch("select * from carriers order by name")]


async def carrier_history(conn: Conn | asyncpg.Pool, name: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select event, actor, detail, at from carrier_events where carrier = $1 order by id",
        name,
    )
    return [{**dict(r), "detail": json.loads(r["detail"]), "at": r["at"].isoformat()}
            for r in rows]  # fmt: skip


async def list_rules(conn: Conn | asyncpg.Pool) -> list[RouteRule]:
    rows = await conn.fetch(
        "select account, prefix, pin, exclude, allow_loss from route_rules order by account, prefix"
    )
    return [RouteRule(r["account"], r["prefix"], tuple(r["pin"]), tuple(r["exclude"]),
                      r["allow_loss"]) for r in rows]  # fmt: skip


async def mirrored_rules(redis: Redis, keys: Keyspace) -> list[RouteRule]:
    raw = await redis.get(keys.route_rules())
    return [] if raw is None else rules_from_json(raw)


async def mirrored_fx(redis: Redis, keys: Keyspace) -> FxTable:
    """The exchange rates Redis holds (none: an empty table, other currencies skipped)."""
    raw = await redis.get(keys.fx_rates())
    return FxTable() if raw is None else fx_from_json(raw)


async def mirrored_carriers(redis: Redis, keys: Keyspace) -> list[Carrier] | None:
    """The carriers Redis holds; None when it holds no copy (never synced, or lost)."""
    raw = await redis.get(keys.carriers())
    return None if raw is None else carriers_from_json(raw)


class CarrierStore:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, keys: Keyspace) -> None:
        self.pool = pool
        self.redis = redis
        self.keys = keys

    async def create(self, carrier: Carrier, *, at: datetime, actor: str) -> Carrier:
        carrier = replace(carrier.checked(), created_at=at, updated_at=at)
        async with self.pool.acquire() as conn, conn.transaction():
            await _check_deck(conn, carrier.deck)
            if await conn.fetchval("select 1 from carriers where name = $1", carrier.name):
                raise CarrierConflict("name", f"carrier {carrier.name!r} exists already")
            await conn.execute(
                f"insert into carriers ({', '.join(_COLUMNS)}) values"
                f" ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})",
                *(getattr(carrier, c) for c in _COLUMNS),
            )
            await _event(conn, carrier.name, "created", actor, carrier.as_dict(), at)
        await self.mirror()
        return carrier

    async def update(
        self, name: str, changes: dict[str, Any], *, at: datetime, actor: str
    ) -> Carrier:
        unknown = set(changes) - CHANGEABLE
        if unknown:
            raise CarrierError(sorted(unknown)[0], "cannot be changed")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from carriers where name = $1 for update", name)
            if row is None:
                raise CarrierNotFound(name)
            before = _carrier(row)
            after = replace(before, **changes, updated_at=at).checked()
            if after.deck != before.deck:
                await _check_deck(conn, after.deck)
            changed = {k: getattr(after, k) for k in changes
                       if getattr(before, k) != getattr(after, k)}  # fmt: skip
            if not changed:
                return before
            sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changed))
            await conn.execute(
                f"update carriers set {sets}, updated_at = ${len(changed) + 2} where name = $1",
                name,
                *changed.values(),
                at,
            )
            event = "disabled" if changed == {"disabled": True} else "updated"
            await _event(conn, name, event, actor, changed, at)
        await self.mirror()
        return after

    async def set_rule(self, rule: RouteRule, *, at: datetime, actor: str) -> RouteRule | None:
        """Store the rule of (account, prefix), replacing the one there; a rule that pins,
        excludes and allows nothing removes it (None)."""
        rule = rule.checked()
        async with self.pool.acquire() as conn, conn.transaction():
            if rule.account and not await conn.fetchval(
                "select 1 from accounts where id = $1", rule.account
            ):
                raise CarrierError("account", f"unknown account {rule.account!r}")
            await conn.execute(
                "delete from route_rules where account = $1 and prefix = $2",
                rule.account,
                rule.prefix,
            )
            empty = not (rule.pin or rule.exclude or rule.allow_loss)
            if not empty:
                await conn.execute(
                    "insert into route_rules (account, prefix, pin, exclude, allow_loss,"
                    " updated_at, updated_by) values ($1, $2, $3, $4, $5, $6, $7)",
                    rule.account, rule.prefix, list(rule.pin), list(rule.exclude),
                    rule.allow_loss, at, actor,
                )  # fmt: skip
        await self.mirror()
        return None if empty else rule

    async def mirror(self) -> int:
        """Write every carrier, routing rule and exchange rate to Redis (one MULTI: the
        documents share the carriers' tag); returns how many carriers."""
        found = await list_carriers(self.pool)
        rules = await list_rules(self.pool)
        rates = await list_fx(self.pool)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.carriers(), carriers_to_json(found))
            pipe.set(self.keys.route_rules(), rules_to_json(rules))
            pipe.set(self.keys.fx_rates(), fx_to_json(rates))
            await pipe.execute()
        return len(found)


async def _check_deck(conn: Conn, deck: str) -> None:
    if not await conn.fetchval("select 1 from deck_heads where name = $1", deck):
        raise CarrierError("deck", f"unknown deck {deck!r}: import it first")


async def _event(
    conn: Conn, carrier: str, event: str, actor: str, detail: Any, at: datetime
) -> None:
    await conn.execute(
        "insert into carrier_events (carrier, event, actor, detail, at)"
        " values ($1, $2, $3, $4, $5)",
        carrier,
        event,
        actor,
        json.dumps(detail, default=str),
        at,
    )
