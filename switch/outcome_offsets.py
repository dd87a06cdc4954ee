"""Where the outcome log was settled up to, in PostgreSQL (migration 0030).

The offset moves only after the lines before it were settled in the ledger, and in the same
transaction as the lines set aside on the way: a crash anywhere replays lines (settlement is
idempotent on the call id), never skips one. PostgreSQL, not Redis: if Redis lost its data,
a lost offset would replay a whole file onto records Redis no longer holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Position:
    inode: int
    offset: int
    first_line: str = ""  # tells a file from a later one that reuses its inode number


@dataclass(frozen=True, slots=True)
class Reject:
    offset: int
    line: str
    error: str


class OffsetStore:
    def __init__(self, pool: asyncpg.Pool, log: str) -> None:
        self.pool = pool
        self.log = log

    async def load(self) -> Position | None:
        row = await self.pool.fetchrow(
            "select inode, byte_offset, first_line from outcome_log_offsets where log = $1",
            self.log,
        )
        return None if row is None else Position(row[0], row[1], row[2])

    async def save(self, pos: Position, rejects: Sequence[Reject] = ()) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if rejects:
                await conn.executemany(
                    "insert into outcome_log_rejects (log, inode, byte_offset, line, error)"
                    " values ($1, $2, $3, $4, $5) on conflict do nothing",
                    [(self.log, pos.inode, r.offset, r.line, r.error) for r in rejects],
                )
            await conn.execute(
                "insert into outcome_log_offsets (log, inode, byte_offset, first_line)"
                " values ($1, $2, $3, $4) on conflict (log) do update set inode = $2,"
                " byte_offset = $3, first_line = $4, updated_at = now()",
                self.log,
                pos.inode,
                pos.offset,
                pos.first_line,
            )
