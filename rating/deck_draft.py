"""A deck version's compiled form written to Redis piece by piece: appended to a building
key (which expires if the writer dies), then renamed into place with the switch of the
deck's `current` pointer in one MULTI. Memory holds one piece, never the whole deck."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from redis.asyncio import Redis

from rating.deck import COMPILED_FORMAT
from rating.deck_schedule import KEEP_MS, Pruned, merged, prune
from rating.keys import Keyspace

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(at: datetime) -> int:
    """An instant in whole epoch milliseconds, exactly (no float rounding at the switch)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def write_schedule(pipe: Any, keys: Keyspace, name: str, pruned: Pruned) -> None:
    """In the publication's MULTI: the pruned schedule replaces the stored one, and the
    dropped versions' compiled forms expire (calls may still settle with them meanwhile)."""
    key = keys.deck_schedule(name)
    pipe.delete(key)
    pipe.hset(key, mapping={str(v): ms for v, ms in pruned.keep.items()})
    for version in pruned.drop:
        pipe.pexpire(keys.deck_version(name, version), KEEP_MS)


PIECE_CHARS = 1 << 20  # characters appended to Redis at a time
BUILDING_TTL_S = 3600  # a publication that died half-way leaves nothing for long


class Draft:
    """`{"prefixes":{"<prefix>":"<rows as a JSON string>",...},<manifest>,...}` built by
    `add` (or `add_text` for pieces already written), then `finish` and `publish`."""

    def __init__(self, redis: Redis, keys: Keyspace, name: str, version: int) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        self.version = version
        self.building = keys.deck_building(name, version)
        self._parts: list[str] = ['{"prefixes":{']
        self._size = 0
        self._sep = ""

    async def start(self) -> Draft:
        await self.redis.delete(self.building)
        return self

    def add(self, prefix: str, rows: str) -> bool:
        """One prefix's compiled rows; True when a piece is ready to `flush`. A prefix is
        digits: it needs no escaping."""
        text = f'{self._sep}"{prefix}":{encode_basestring(rows)}'
        self._sep = ","
        self._parts.append(text)
        self._size += len(text)
        return self._size >= PIECE_CHARS

    def add_joined(self, text: str) -> bool:
        """Prefixes' pieces as `add` writes them, already joined by commas ("" adds
        nothing); True when a piece is ready to `flush`."""
        if text:
            self._parts.append(self._sep + text)
            self._sep = ","
            self._size += len(text)
        return self._size >= PIECE_CHARS

    async def add_text(self, text: str) -> None:
        """Pieces already written and joined (by PostgreSQL)."""
        self._parts.append(self._sep + text)
        self._sep = ","
        await self.flush()

    async def flush(self) -> None:
        if self._parts:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.append(self.building, "".join(self._parts))
                pipe.expire(self.building, BUILDING_TTL_S)
                await pipe.execute()
        self._parts, self._size = [], 0

    async def finish(self, manifest: dict[str, Any], sha256: str, rows: int) -> None:
        """The manifest and counts after the prefixes: the compiled form is complete."""
        tail = {
            **manifest,
            "format": COMPILED_FORMAT,
            "version": self.version,
            "sha256": sha256,
            "rows": rows,
        }
        self._parts.append("}," + json.dumps(tail, separators=(",", ":"))[1:])
        await self.flush()

    async def publish(self, schedule: dict[int, int], now: datetime | None = None) -> None:
        """Put the finished version in place, tell the versions' effective instants (epoch
        ms, by version) and make it current, in one MULTI: a process reading the schedule
        never sees a version whose compiled form is not there yet. The schedule is pruned
        as of `now` (default: the wall clock; rating/deck_schedule.py)."""
        version_key = self.keys.deck_version(self.name, self.version)
        pruned = None
        if schedule:
            at = epoch_ms(now or datetime.now(UTC))
            pruned = prune(await merged(self.redis, self.keys, self.name, schedule), at)
        async with self.redis.pipeline(transaction=True) as pipe:
            # as a raw command: redis-py's cluster pipeline refuses `rename` by name (its
            # keys could be on two slots), though both keys here share the deck's hash tag
            pipe.execute_command("RENAME", self.building, version_key)
            pipe.persist(version_key)
            if pruned is not None:
                write_schedule(pipe, self.keys, self.name, pruned)
            pipe.set(self.keys.deck_current(self.name), self.version)
            await pipe.execute()

    async def discard(self) -> None:
        self._parts = []
        await self.redis.delete(self.building)
