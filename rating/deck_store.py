"""Decks in PostgreSQL (versioned source of truth) and their compiled copy in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from core.pg import Conn
from rating.bands import parse_band
from rating.deck import (
    CompiledRows,
    Deck,
    DeckDigest,
    DeckHead,
    compiled_prefixes,
    deck_from_json,
    deck_to_json,
)
from rating.deck_draft import Draft, epoch_ms, write_schedule
from rating.deck_import import (
    ImportGuard,
    lock_head,
    new_version,
    schedule,
    seal_version,
    write_prefixes,
)
from rating.deck_schedule import merged, prune
from rating.keys import Keyspace
from rating.money import Rounding


class DeckNotFound(LookupError):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"deck {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"unknown {what}")
        self.name = name
        self.version = version


async def import_deck(
    conn: Conn,
    deck: Deck,
    source: str,
    *,
    effective_at: datetime | None = None,
    guard: ImportGuard | None = None,
) -> tuple[Deck, bool]:
    """Store a deck already in memory (tests, examples) as a new version and make it
    current, in one transaction; `tollgate deck import` streams a file instead
    (`deck_import.import_stream`). It prices calls that start at or after `effective_at`
    (default: the import's instant); `guard` may refuse it. The same content as the
    current version creates nothing."""
    head = DeckHead(deck.name, deck.currency, deck.timezone, deck.decimals, deck.rounding,
                    deck.bands)  # fmt: skip
    async with conn.transaction():
        current = await lock_head(conn, deck.name)
        if current is not None and current["sha256"] == deck.sha256:
            return replace(deck, version=current["version"]), False
        deck_id, version = await new_version(conn, head, source, effective_at)
        prefixes = compiled_prefixes(deck)
        firsts = {r.prefix: r.line for r in reversed(deck.rows)}
        await write_prefixes(conn, ((deck_id, p, firsts[p], t) for p, t in prefixes.items()))
        await seal_version(
            conn, deck_id, deck.name, version, deck.sha256, len(deck.rows), len(prefixes), guard
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
        "select id, name, version, currency, timezone, decimals, rounding, bands, sha256, rows"
        " from decks where name = $1 and version = $2",
        name,
        version,
    )
    if row is None:
        raise DeckNotFound(name, version)
    prefixes = await conn.fetch(
        "select prefix, rows from deck_prefixes where deck_id = $1 order by first_line", row["id"]
    )
    bands = {n: parse_band(n, w) for n, w in json.loads(row["bands"]).items()}
    return Deck(
        row["name"],
        row["currency"],
        row["timezone"],
        row["decimals"],
        Rounding(row["rounding"]),
        bands,
        CompiledRows({p["prefix"]: p["rows"] for p in prefixes}, row["rows"]),
        version=row["version"],
        sha256=row["sha256"],
    )


async def list_decks(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select d.name, d.version, d.currency, d.imported_at, d.effective_at, d.source,"
        " (h.current_version = d.version) as current, d.rows"
        " from decks d left join deck_heads h on h.name = d.name order by d.name, d.version"
    )
    return [
        {
            **dict(r),
            "imported_at": r["imported_at"].isoformat(),
            "effective_at": r["effective_at"].isoformat(),
            "current": bool(r["current"]),
        }
        for r in rows
    ]


async def version_in_force(conn: Conn, name: str, at: datetime) -> int:
    """The version pricing a call that starts at `at`: the highest whose instant has come."""
    version = await conn.fetchval(
        "select max(version) from decks where name = $1 and effective_at <= $2", name, at
    )
    if version is None:
        raise DeckNotFound(name)
    return int(version)


async def effective_instants(conn: Conn, name: str) -> dict[int, datetime]:
    """Every version of the deck and the instant it takes effect."""
    rows = await conn.fetch("select version, effective_at from decks where name = $1", name)
    return {r["version"]: r["effective_at"] for r in rows}


async def publish(redis: Redis, keys: Keyspace, deck: Deck) -> None:
    """Compile a deck version into Redis, in force from any instant, then point `current`
    at it (one MULTI). Stored versions go through `publish_stored` (their own instants)."""
    await _publish_compiled(
        redis, keys, deck.name, deck.version, deck_to_json(deck), {deck.version: 0}
    )


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
        # the version in force now and the ones scheduled after it, oldest first (the head
        # last, so `current` ends at it)
        served = await conn.fetch(
            "select version from decks where name = $1 and version < $2 and version >="
            " coalesce((select max(version) from decks where name = $1"
            " and effective_at <= now()), 1) order by version",
            name,
            version,
        )
        for row in served:
            if not await redis.exists(keys.deck_version(name, row["version"])):
                await publish_stored(conn, redis, keys, name, row["version"])
        await publish_stored(conn, redis, keys, name, version)
        published += 1
    return published


async def publish_stored(conn: Conn, redis: Redis, keys: Keyspace, name: str, version: int) -> None:
    """`publish` a stored version without loading it: its prefixes, kept in the compiled
    form, are appended to Redis piece by piece (a building key renamed into place with the
    pointer switch), so memory does not grow with the deck."""
    row = await conn.fetchrow(
        "select id, name, version, currency, timezone, decimals, rounding, bands, sha256, rows"
        " from decks where name = $1 and version = $2",
        name,
        version,
    )
    if row is None:
        raise DeckNotFound(name, version)
    draft = await Draft(redis, keys, name, version).start()
    last = await conn.fetchval(
        "select max(first_line) from deck_prefixes where deck_id = $1", row["id"]
    )
    for start in range(0, (last or 0) + 1, PUBLISH_LINES):
        # PostgreSQL writes each piece (`"prefix":"rows"`, the rows a JSON string) and joins
        # a range of them: Python only passes the text on
        text = await conn.fetchval(PIECES, row["id"], start, start + PUBLISH_LINES)
        if text is not None:
            await draft.add_text(text)
    manifest = {
        "name": row["name"],
        "currency": row["currency"],
        "timezone": row["timezone"],
        "decimals": row["decimals"],
        "rounding": row["rounding"],
        "bands": json.loads(row["bands"]),
    }
    await draft.finish(manifest, row["sha256"], row["rows"])
    await draft.publish(await schedule(conn, name))


PUBLISH_LINES = 50_000  # lines of the deck whose prefixes are appended to Redis at a time
PIECES = (
    "select string_agg(to_json(prefix)::text || ':' || to_json(rows)::text, ',')"
    " from deck_prefixes where deck_id = $1 and first_line >= $2 and first_line < $3"
)


async def _publish_compiled(
    redis: Redis, keys: Keyspace, name: str, version: int, compiled: str, instants: dict[int, int]
) -> None:
    """The version's compiled form, the effective instants (epoch ms, the schedule pruned as
    of now) and `current`, in one MULTI (as `Draft.publish`)."""
    now_ms = epoch_ms(datetime.now(UTC))
    pruned = prune(await merged(redis, keys, name, instants), now_ms)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.deck_version(name, version), compiled)
        write_schedule(pipe, keys, name, pruned)
        pipe.set(keys.deck_current(name), version)
        await pipe.execute()


async def fetch_from_redis(redis: Redis, keys: Keyspace, name: str, version: int) -> Deck | None:
    raw = await redis.get(keys.deck_version(name, version))
    return None if raw is None else deck_from_json(raw)
