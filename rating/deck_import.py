"""A deck version written to PostgreSQL in one transaction, its rates streamed in with COPY
as they are read and checked, one row per prefix (`deck_prefixes`): memory does not grow
with the deck. Any error rolls the whole transaction back: nothing of the version is left."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.pg import Conn
from rating.deck import DeckError, DeckHead, PrefixCheck, Progress, deck_hash
from rating.deck_draft import Draft, epoch_ms
from rating.deck_reader import Block, ReaderProcess, inline_blocks
from rating.deck_rows import RateStream, Run, merged_problem
from rating.keys import Keyspace

COLUMNS = ["deck_id", "prefix", "first_line", "rows"]

# Run inside the import's transaction once the new version's rates are stored and checked,
# before it becomes the head: (conn, deck name, new version, its effective instant). Raising
# refuses the import (nothing is stored); the price-change check of billing is one.
ImportGuard = Callable[[Conn, str, int, datetime], Awaitable[None]]
SERVED_VERSIONS = 32  # the newest versions whose effective instants Redis is told


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did: the version now current, and whether it made it."""

    name: str
    version: int
    created: bool
    rows: int
    prefixes: int
    published: bool = False  # its compiled form is current in Redis

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "rows": self.rows,
            "prefixes": self.prefixes,
            "current": True,
        }


class _Unchanged(Exception):
    def __init__(self, same: Imported) -> None:
        self.same = same


async def import_stream(
    conn: Conn,
    head: DeckHead,
    manifest: dict[str, Any],
    rates: BinaryIO,
    *,
    rates_file: str,
    source: str,
    lines: int = 0,
    progress: Progress | None = None,
    redis: Redis | None = None,
    keys: Keyspace | None = None,
    effective_at: datetime | None = None,
    guard: ImportGuard | None = None,
    reader_process: bool = False,
) -> Imported:
    """Store a deck read from `rates` (its CSV) as a new current version, in one
    transaction; the same content as the current version creates nothing. The version
    prices calls that start at or after `effective_at` (default: the import's instant);
    `guard` may refuse it before it becomes the head. Given Redis,
    the compiled form is written there as the runs go by and published after the commit
    (unless prefixes came in several runs: then `published` is False, and the version is
    published from what PostgreSQL stored). `reader_process`: the CSV is read and
    compiled in a forked second process (`deck_reader`) while this one feeds PostgreSQL
    and Redis (the command line's import; not a server's)."""
    digest = deck_hash(manifest)
    draft: Draft | None = None
    reader: ReaderProcess | None = None
    try:
        async with conn.transaction():
            current = await lock_head(conn, head.name)
            deck_id, version = await new_version(conn, head, source, effective_at)
            stream = RateStream(
                head, rates, digest, file=rates_file, deck_id=deck_id, lines=lines,
                progress=progress,
            )  # fmt: skip
            if redis is not None and keys is not None:
                draft = await Draft(redis, keys, head.name, version).start()
            with _collector_off():
                if reader_process:
                    reader = ReaderProcess(stream, draft is not None)
                    runs: AsyncIterator[Block] = aiter(reader)
                else:
                    runs = inline_blocks(stream, draft is not None)
                sent = _sent(runs, draft)
                await conn.copy_to_table("deck_prefixes", source=sent, columns=COLUMNS)
            sha256 = reader.outcome.sha256 if reader and reader.outcome else digest.hexdigest()
            if current is not None and current["sha256"] == sha256:
                raise _Unchanged(_imported(current, head.name, created=False))
            prefixes = await _settle(conn, deck_id, stream, PrefixCheck(rates_file, head.bands))
            await seal_version(
                conn, deck_id, head.name, version, sha256, stream.rows, prefixes, guard
            )
            if draft is not None and stream.grouped:
                await draft.finish(head.manifest(), sha256, stream.rows)
                served = await schedule(conn, head.name)
        if draft is not None and stream.grouped:
            await draft.publish(served)
            return Imported(head.name, version, True, stream.rows, prefixes, published=True)
    except _Unchanged as unchanged:
        return unchanged.same
    finally:
        if reader is not None:
            reader.close()  # after an error elsewhere: the reader may still be running
        if draft is not None:
            with suppress(RedisError, OSError):  # the error that got here says more
                await draft.discard()  # nothing once published: the key was renamed
    return Imported(head.name, version, True, stream.rows, prefixes)


async def _sent(source: AsyncIterator[Block], draft: Draft | None) -> AsyncIterator[bytes]:
    """The blocks' COPY text, their compiled pieces added to the draft on the way."""
    async for copy, pieces in source:
        if draft is not None and draft.add_joined(pieces):
            await draft.flush()
        yield copy


@contextmanager
def _collector_off() -> Iterator[None]:
    """The cyclic garbage collector held off while the rates stream by: every row's
    objects go by reference counting (they form no cycles), and the collector walking
    the survivors every 700 allocations took a fifth of the parse. Process-wide, for the
    seconds of one import; a collector that was off stays off."""
    resume = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if resume:
            gc.enable()


async def lock_head(conn: Conn, name: str) -> Any:
    """Serialise imports of one deck (until the transaction ends); its current version."""
    await conn.execute("select pg_advisory_xact_lock(hashtext($1))", name)
    return await conn.fetchrow(
        "select d.version, d.sha256, d.rows, d.prefixes from deck_heads h join decks d"
        " on d.name = h.name and d.version = h.current_version where h.name = $1",
        name,
    )


def _imported(row: Any, name: str, *, created: bool) -> Imported:
    return Imported(name, row["version"], created, row["rows"], row["prefixes"])


async def new_version(
    conn: Conn, head: DeckHead, source: str, effective_at: datetime | None = None
) -> tuple[int, int]:
    """The next version's row (its hash and counts are set by `seal_version`), in force
    from `effective_at` (default: now) kept to the millisecond, as calls' starts are
    recorded and Redis is told."""
    version = 1 + await conn.fetchval(
        "select coalesce(max(version), 0) from decks where name = $1", head.name
    )
    deck_id = await conn.fetchval(
        "insert into decks (name, version, currency, timezone, decimals, rounding, bands,"
        " source, sha256, rows, prefixes, effective_at) values ($1,$2,$3,$4,$5,$6,$7,$8,'',0,0,"
        " date_trunc('milliseconds', coalesce($9, now()))) returning id",
        head.name,
        version,
        head.currency,
        head.timezone,
        head.decimals,
        head.rounding.value,
        json.dumps(head.manifest()["bands"]),
        source,
        effective_at,
    )
    return int(deck_id), int(version)


async def write_prefixes(conn: Conn, runs: Iterable[Run]) -> None:
    await conn.copy_records_to_table("deck_prefixes", records=runs, columns=COLUMNS)


async def seal_version(
    conn: Conn,
    deck_id: int,
    name: str,
    version: int,
    sha256: str,
    rows: int,
    prefixes: int,
    guard: ImportGuard | None = None,
) -> None:
    """Give the version its hash and counts, let `guard` refuse it, and make it current."""
    effective = await conn.fetchval(
        "update decks set sha256 = $2, rows = $3, prefixes = $4 where id = $1"
        " returning effective_at",
        deck_id,
        sha256,
        rows,
        prefixes,
    )
    if guard is not None:
        await guard(conn, name, version, effective)
    await conn.execute(
        "insert into deck_heads (name, current_version) values ($1, $2)"
        " on conflict (name) do update set current_version = excluded.current_version,"
        " switched_at = now()",
        name,
        version,
    )


async def schedule(conn: Conn, name: str) -> dict[int, int]:
    """The newest versions of the deck and the instants (epoch ms) they take effect, as
    Redis is told with each publication."""
    rows = await conn.fetch(
        "select version, effective_at from decks where name = $1 order by version desc"
        " limit $2",
        name,
        SERVED_VERSIONS,
    )
    return {r["version"]: epoch_ms(r["effective_at"]) for r in rows}


async def _settle(conn: Conn, deck_id: int, stream: RateStream, check: PrefixCheck) -> int:
    """Raise the deck's first error found across its rows; else its number of prefixes."""
    if stream.grouped:  # one run per prefix: every prefix was checked whole as it was read
        if stream.problem is not None:
            raise stream.problem
        return stream.runs
    # prefixes that came in several runs are put together in line order: runs never
    # interleave, so their rows in the order of their first lines are in line order
    await conn.execute(
        "create temp table deck_merged on commit drop as select prefix from deck_prefixes"
        " where deck_id = $1 group by prefix having count(*) > 1",
        deck_id,
    )
    await conn.execute(
        "with gone as (delete from deck_prefixes d using deck_merged m"
        " where d.deck_id = $1 and d.prefix = m.prefix"
        " returning d.prefix, d.first_line, d.rows)"
        " insert into deck_prefixes (deck_id, prefix, first_line, rows)"
        " select $1, prefix, min(first_line), '[' || string_agg(substr(rows, 2,"
        " length(rows) - 2), ',' order by first_line) || ']' from gone group by prefix",
        deck_id,
    )
    # a run that failed may have been completed by another run of its prefix: look again
    # at every prefix then, else at the merged ones only
    where = "" if stream.problem is not None else " and prefix in (select prefix from deck_merged)"
    dup: DeckError | None = None
    problem: DeckError | None = None
    async for row in conn.cursor(
        f"select prefix, rows from deck_prefixes where deck_id = $1{where} order by first_line",
        deck_id,
    ):
        found_dup, found = merged_problem(check, row["prefix"], json.loads(row["rows"]))
        if found_dup is not None and (dup is None or _line(found_dup) < _line(dup)):
            dup = found_dup
        problem = problem or found
    if dup is not None or problem is not None:
        raise dup or problem  # type: ignore[misc]
    return int(
        await conn.fetchval("select count(*) from deck_prefixes where deck_id = $1", deck_id)
    )


def _line(error: DeckError) -> int:
    return error.line or 0
