"""Decks in PostgreSQL (versioned source of truth) and their compiled copy in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from core.pg import Conn
from rating.bands import parse_band
from rating.deck import Deck, DeckDigest, RateRow, deck_from_json, deck_to_json
from rating.keys import Keyspace
from rating.money import Rounding


class DeckNotFound(LookupError):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"deck {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"unknown {what}")
        self.name = name
        self.version = version


async def import_deck(conn: Conn, deck: Deck, source: str) -> tuple[Deck, bool]:
    """Store a validated deck as a new version and make it current, in one transaction.

    Importing the same content as the current version creates nothing (returns False)."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", deck.name)
        head = await conn.fetchrow(
            "select d.version, d.sha256 from deck_heads h join decks d"
            " on d.name = h.name and d.version = h.current_version where h.name = $1",
            deck.name,
        )
        if head is not None and head["sha256"] == deck.sha256:
            return replace(deck, version=head["version"]), False
        version = 1 + (
            await conn.fetchval(
                "select coalesce(max(version), 0) from decks where name = $1", deck.name
            )
        )
        deck_id = await conn.fetchval(
            "insert into decks (name, version, currency, timezone, decimals, rounding, bands,"
            " source, sha256, rows, prefixes, compiled)"
            " values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) returning id",
            deck.name,
            version,
            deck.currency,
            deck.timezone,
            deck.decimals,
            deck.rounding.value,
            json.dumps(deck.manifest()["bands"]),
            source,
            deck.sha256,
            len(deck.rows),
            len(deck.prefixes),
            deck_to_json(deck, version),
        )
        await conn.copy_records_to_table(
            "deck_rates",
            records=[
                (
                    deck_id,
                    r.line,
                    r.prefix,
                    r.name,
                    r.connect_fee,
                    r.rate,
                    r.rate_unit_s,
                    r.increment_s,
                    r.from_s,
                    r.band,
                )
                for r in deck.rows
            ],
            columns=[
                "deck_id",
                "line",
                "prefix",
                "name",
                "connect_fee",
                "rate",
                "rate_unit_s",
                "increment_s",
                "from_s",
                "band",
            ],
        )
        await conn.execute(
            "insert into deck_heads (name, current_version) values ($1, $2)"
            " on conflict (name) do update set current_version = excluded.current_version,"
            " switched_at = now()",
            deck.name,
            version,
        )
    return replace(deck, version=version), True


@dataclass(frozen=True, slots=True)
class StoredDeck:
    """A stored version, described without loading its rates."""

    name: str
    version: int
    rows: int
    prefixes: int


async def current_if_unchanged(conn: Conn, digest: DeckDigest) -> StoredDeck | None:
    """The current version of the deck when its content is `digest` (an unchanged deck,
    recognised by its hash before anything is parsed), else None."""
    row = await conn.fetchrow(
        "select d.version, d.rows, d.prefixes"
        " from deck_heads h join decks d on d.name = h.name and d.version = h.current_version"
        " where h.name = $1 and d.sha256 = $2",
        digest.name,
        digest.sha256,
    )
    if row is None:
        return None
    return StoredDeck(digest.name, row["version"], row["rows"], row["prefixes"])


async def published_version(redis: Redis, keys: Keyspace, name: str) -> int | None:
    """The version Redis serves as current, if its compiled copy is there."""
    raw = await redis.get(keys.deck_current(name))
    if raw is None or not await redis.exists(keys.deck_version(name, int(raw))):
        return None
    return int(raw)


async def load_deck_version(conn: Conn, name: str, version: int | None = None) -> Deck:
    if version is None:
        version = await conn.fetchval(
            "select current_version from deck_heads where name = $1", name
        )
        if version is None:
            raise DeckNotFound(name)
    row = await conn.fetchrow(
        "select id, name, version, currency, timezone, decimals, rounding, bands, sha256"
        " from decks where name = $1 and version = $2",
        name,
        version,
    )
    if row is None:
        raise DeckNotFound(name, version)
    rates = await conn.fetch(
        "select line, prefix, name, connect_fee, rate, rate_unit_s, increment_s, from_s, band"
        " from deck_rates where deck_id = $1 order by line",
        row["id"],
    )
    bands = {n: parse_band(n, w) for n, w in json.loads(row["bands"]).items()}
    return Deck(
        row["name"],
        row["currency"],
        row["timezone"],
        row["decimals"],
        Rounding(row["rounding"]),
        bands,
        tuple(RateRow(**dict(r)) for r in rates),
        version=row["version"],
        sha256=row["sha256"],
    )


async def list_decks(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select d.name, d.version, d.currency, d.imported_at, d.source,"
        " (h.current_version = d.version) as current, d.rows"
        " from decks d left join deck_heads h on h.name = d.name order by d.name, d.version"
    )
    return [
        {**dict(r), "imported_at": r["imported_at"].isoformat(), "current": bool(r["current"])}
        for r in rows
    ]


async def publish(redis: Redis, keys: Keyspace, deck: Deck) -> None:
    """Compile a deck version into Redis, then point `current` at it (one MULTI)."""
    await _publish_compiled(redis, keys, deck.name, deck.version, deck_to_json(deck))


async def publish_version(redis: Redis, keys: Keyspace, deck: Deck) -> None:
    """Make an older version available to re-rate calls, without switching `current`."""
    await redis.set(keys.deck_version(deck.name, deck.version), deck_to_json(deck))


async def publish_all(conn: Conn, redis: Redis, keys: Keyspace) -> int:
    """Compile every current deck Redis does not have into Redis (start-up, or after Redis
    lost its data); returns how many were compiled."""
    heads = await conn.fetch("select name, current_version from deck_heads")
    published = 0
    for head in heads:
        name, version = head["name"], head["current_version"]
        # already compiled in Redis at this version: start-up does not grow with deck size
        if await published_version(redis, keys, name) == version:
            continue
        await publish_stored(conn, redis, keys, name, version)
        published += 1
    return published


async def publish_stored(conn: Conn, redis: Redis, keys: Keyspace, name: str, version: int) -> None:
    """`publish` a stored version: its compiled form, kept with it at import, is copied
    rather than rebuilt row by row (versions imported before it was kept are rebuilt)."""
    compiled = await conn.fetchval(
        "select compiled from decks where name = $1 and version = $2", name, version
    )
    if compiled is not None:
        await _publish_compiled(redis, keys, name, version, compiled)
    else:
        await publish(redis, keys, await load_deck_version(conn, name, version))


async def _publish_compiled(
    redis: Redis, keys: Keyspace, name: str, version: int, compiled: str
) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.deck_version(name, version), compiled)
        pipe.set(keys.deck_current(name), version)
        await pipe.execute()


async def fetch_from_redis(redis: Redis, keys: Keyspace, name: str, version: int) -> Deck | None:
    raw = await redis.get(keys.deck_version(name, version))
    return None if raw is None else deck_from_json(raw)
