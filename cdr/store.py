"""Writing a batch of CDRs to PostgreSQL in one transaction, idempotently.

The rows come as text (`cdr.model.flat_text_row`, `text_row`) and go by one COPY into a
per-connection temporary table of text columns; PostgreSQL converts them (numbers, epoch
microseconds to times) on the way into `cdrs`, so the writer builds no Python value per
field. When every call of a batch is new, which is what a live writer mostly sees, the
rows go into `cdrs` by one INSERT ... SELECT in a savepoint: a call stored before in the
same month fails it (each partition's unique index on the call is its claim, cdr/ids.py),
undoing the savepoint alone. Then (a replay, a late finish after the sweeper's expiry, a
call another writer stored) the batch takes the general path: the rows go into a typed
staging table, each call is aligned on the partition it was first stored in, the new
calls are inserted and a final record replaces a non-final one. Replaying a batch that
was already committed changes nothing, which is what lets the writer acknowledge stream
entries only after the commit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from cdr.ids import align, edge_calls, twins_elsewhere
from cdr.model import (
    COLUMNS,
    FINAL_STATES,
    STARTED_AT,
    Cdr,
    Row,
    row_identity,
    text_row,
)
from core.pg import Conn

STAGE = "cdr_stage"
_FINAL = ", ".join(f"'{s}'" for s in sorted(FINAL_STATES))
_COLS = ", ".join(COLUMNS)
_KEY = ("switch", "account", "call_id")  # a call's identity (cdr/ids.py)
# Rows are stored in this order so that concurrent writers lock alike; any fixed order does,
# and bytewise comparison sorts several times faster than the database's collation.
_KEY_ORDER = ", ".join(f'{c} collate "C"' for c in _KEY)
_SET = ", ".join(f"{c} = s.{c}" for c in COLUMNS if c not in (*_KEY, "started_at"))

TEXT = "cdr_text"  # the rows as the writer sends them: text, in COLUMNS order
CREATE_STAGE = (
    f"create temporary table if not exists {STAGE} (like cdrs including defaults)"
    " on commit delete rows"
)
CREATE_TEXT = (
    f"create temporary table if not exists {TEXT} ({', '.join(f'{c} text' for c in COLUMNS)})"
    " on commit delete rows"
)
_TYPES = {
    "granted_s": "integer",
    "reserved": "bigint",
    "deck_version": "integer",
    "billsec": "integer",
    "rated_cost": "bigint",
    "cost": "bigint",
    "buy_deck_version": "integer",
    "buy_cost": "bigint",
    "bundle_seconds": "integer",
}
_TIMES = {"started_at", "authorized_at", "answered_at", "ended_at"}
_FLAGS = {"answered", "emergency", "unauthorized"}


def _typed(column: str) -> str:
    """The SQL converting a column of the text table to its type in cdrs."""
    if column in _TIMES:  # exact: microseconds below 2^53 survive the float factor
        return f"timestamptz 'epoch' + {column}::bigint * interval '1 microsecond'"
    if column in _FLAGS:
        return f"{column} = '1'"
    if column in _TYPES:
        return f"{column}::{_TYPES[column]}"
    return column


_TYPED = ", ".join(_typed(c) for c in COLUMNS)
# New calls only (the fast path): a call stored before in the same month fails it with a
# unique violation. In key order, so that concurrent writers lock alike.
INSERT_NEW = (
    f"insert into cdrs ({_COLS}) select {_TYPED} from {TEXT} order by {_KEY_ORDER}"
)
TO_STAGE = f"insert into {STAGE} ({_COLS}) select {_TYPED} from {TEXT}"
# The first started_at stored for a call (switch, account, call id) is the only one it may
# ever have (cdr/ids.py); rows in key order so that concurrent writers lock alike.
ALIGN = align(STAGE)
INSERT_MISSING = (
    f"insert into cdrs ({_COLS}) select {_COLS} from {STAGE}"
    f" order by {_KEY_ORDER} on conflict do nothing"
)
# Only a final record replaces a non-final one (finished after expired); final ones stay.
REPLACE = (
    f"update cdrs c set {_SET}, written_at = now() from {STAGE} s"
    " where c.call_id = s.call_id and c.switch = s.switch and c.account = s.account"
    f" and c.started_at = s.started_at and c.state not in ({_FINAL}) and s.state in ({_FINAL})"
)
INSERT_REJECT = (
    "insert into cdr_rejects (stream, stream_id, call_id, fields, error)"
    " values ($1, $2, $3, $4::jsonb, $5) on conflict (stream, stream_id) do nothing"
)

# Errors caused by the rows themselves: retrying the same batch would fail again.
DATA_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


@dataclass(frozen=True, slots=True)
class Reject:
    """A stream entry kept aside in cdr_rejects with why it could not be a row."""

    stream: str
    stream_id: str
    error: str
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, stream: str, cdr: Cdr, error: str) -> Reject:
        return cls(stream, cdr.stream_id, error, _as_fields(cdr))

    def args(self) -> tuple[str, str, str, str, str]:
        call_id = self.fields.get("call_id", "")[:128]
        return (self.stream, self.stream_id, call_id, json.dumps(self.fields), self.error)


@dataclass(frozen=True, slots=True)
class BatchResult:
    written: int  # rows inserted or replaced
    rejected: int


async def prepare(conn: Conn) -> None:
    """Once per connection: the temporary staging tables."""
    await conn.execute(CREATE_STAGE)
    await conn.execute(CREATE_TEXT)


async def write_batch(
    conn: Conn, stream: str, cdrs: Sequence[Cdr], rejects: Sequence[Reject] = ()
) -> BatchResult:
    """Upsert `cdrs` (at most one per call) and store `rejects`, in one transaction.
    The partitions of the rows must exist."""
    return await write_rows(conn, stream, [text_row(c.row()) for c in cdrs], rejects)


async def write_rows(
    conn: Conn,
    stream: str,
    rows: Sequence[Row],
    rejects: Sequence[Reject] = (),
    starts: Sequence[int] | None = None,
) -> BatchResult:
    """`write_batch` for text rows in COLUMNS order (`cdr.model.flat_text_row`,
    `text_row`): the writer's hot path builds no Cdr. `starts`: each row's started_at in
    epoch microseconds, when the caller has them already."""
    rejects = list(rejects)
    written = 0
    async with conn.transaction():
        if rows:
            await conn.copy_to_table(
                TEXT, source=_chunk(copy_text(rows)), columns=list(COLUMNS), format="text"
            )
            if starts is None:
                starts = [int(r[STARTED_AT]) for r in rows]
            if await _insert_new(conn, rows, starts):
                written = len(rows)
            else:
                written = await _merge(conn)
        if rejects:
            await conn.executemany(INSERT_REJECT, [r.args() for r in rejects])
    return BatchResult(written, len(rejects))


async def _insert_new(conn: Conn, rows: Sequence[Row], starts: Sequence[int]) -> bool:
    """The fast path, for a batch of new calls only: claim them and store their rows.
    Returns False, having written nothing, as soon as one of the calls was claimed before
    (a unique violation, or a claim in the neighbouring month, undoes the savepoint alone)."""
    try:
        async with conn.transaction():  # a savepoint in write_rows' transaction
            await conn.execute(INSERT_NEW)
            calls = zip(map(row_identity, rows), starts, strict=True)
            if await twins_elsewhere(conn, edge_calls(calls)):
                raise _ClaimedElsewhere
    except (asyncpg.UniqueViolationError, _ClaimedElsewhere):
        return False
    return True


class _ClaimedElsewhere(Exception):
    """Undoes the fast path's savepoint: a call of the batch has a claim in another month."""


async def _merge(conn: Conn) -> int:
    """The general path: some calls of the batch were stored before. The insert comes
    first: a call another writer stores meanwhile is then waited for, and replaced by the
    update if ours is final and theirs not."""
    await conn.execute(f"{TO_STAGE}; {ALIGN}")  # one round trip
    inserted = int((await conn.execute(INSERT_MISSING)).split()[-1])
    return inserted + int((await conn.execute(REPLACE)).split()[-1])


_NULL = "\\N"  # COPY text's NULL
_NULLABLE_A, _NULLABLE_B = (COLUMNS.index(c) for c in ("authorized_at", "answered_at"))
_TABS = len(COLUMNS) - 1
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Sequence[Row]) -> bytes:
    """Text rows (None only in the two nullable times) as COPY's text format. Joined whole
    and checked at once by counting separators and backslashes (a value holding either
    sends the batch through `_escaped_text`): asyncpg's encoding of each value was ~7% of
    the writer's time."""
    lines: list[str] = []
    nulls = 0
    try:
        for row in rows:
            a, b = row[_NULLABLE_A], row[_NULLABLE_B]
            if a is None or b is None:
                nulls += (a is None) + (b is None)
                row = tuple(_NULL if v is None else v for v in row)
            lines.append("\t".join(row))
    except TypeError:  # a None elsewhere, or a value that is not text
        return _escaped_text(rows)
    lines.append("")
    text = "\n".join(lines)
    if (
        text.count("\n") != len(rows)
        or text.count("\t") != _TABS * len(rows)
        or text.count("\\") != nulls
        or "\r" in text
    ):
        return _escaped_text(rows)
    return text.encode()


async def _chunk(data: bytes) -> AsyncIterator[bytes]:
    """COPY's source in one piece (asyncpg reads a file in a worker thread)."""
    yield data


def _escaped_text(rows: Sequence[Row]) -> bytes:
    """`copy_text` value by value, escaping backslashes and separators."""
    lines = [
        "\t".join(_NULL if v is None else str(v).translate(_ESCAPES) for v in row)
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines).encode()


def _as_fields(cdr: Cdr) -> dict[str, str]:
    def text(value: Any) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bool):
            return "1" if value else "0"
        return "" if value is None else str(value)

    return {name: text(getattr(cdr, name)) for name in COLUMNS}
