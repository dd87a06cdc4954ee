"""Writing a batch of CDRs to PostgreSQL in one transaction, idempotently.

When every call of a batch is new, which is what a live writer mostly sees, the calls are
claimed in `cdr_ids` and their rows stored in `cdrs` by two COPYs in a savepoint: a claim
that exists already fails the first COPY, undoing the savepoint alone. Then (a replay, a
late finish after the sweeper's expiry, a call another writer stored) the batch takes the
general path: COPY into a per-connection temporary table, align each call on the partition
it was first stored in, then one INSERT ... SELECT ... ON CONFLICT into `cdrs`. Replaying a
batch that was already committed changes nothing, which is what lets the writer acknowledge
stream entries only after the commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from cdr.ids import CLAIM_COLUMNS, align, claim, claim_ids, twins_elsewhere
from cdr.model import (
    ACCOUNT_AT,
    CALL_ID_AT,
    COLUMNS,
    FINAL_STATES,
    STARTED_AT,
    SWITCH_AT,
    Cdr,
    Row,
    row_identity,
)
from core.pg import Conn

STAGE = "cdr_stage"
_FINAL = ", ".join(f"'{s}'" for s in sorted(FINAL_STATES))
_COLS = ", ".join(COLUMNS)
_KEY = ("switch", "account", "call_id")  # a call's identity (the same in cdr_ids)
_SET = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in (*_KEY, "started_at"))

CREATE_STAGE = (
    f"create temporary table if not exists {STAGE} (like cdrs including defaults)"
    " on commit delete rows"
)
# The first started_at seen for a call (switch, account, call id) is the only one it may ever
# have; rows in key order so that concurrent writers lock alike (cdr/ids.py: the claims'
# layout, partitioned by month).
CLAIM_IDS = claim_ids(STAGE)
ALIGN = align(STAGE)
# Only a final record replaces a non-final one (finished after expired); final ones stay.
UPSERT = (
    f"insert into cdrs as c ({_COLS}) select {_COLS} from {STAGE}"
    " order by switch, account, call_id"
    " on conflict (switch, account, call_id, started_at)"
    f" do update set {_SET}, written_at = now()"
    f" where c.state not in ({_FINAL}) and excluded.state in ({_FINAL})"
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
    """Once per connection: the temporary staging table."""
    await conn.execute(CREATE_STAGE)


async def write_batch(
    conn: Conn, stream: str, cdrs: Sequence[Cdr], rejects: Sequence[Reject] = ()
) -> BatchResult:
    """Upsert `cdrs` (at most one per call) and store `rejects`, in one transaction.
    The partitions of the rows must exist."""
    return await write_rows(conn, stream, [c.row() for c in cdrs], rejects)


async def write_rows(
    conn: Conn, stream: str, rows: Sequence[Row], rejects: Sequence[Reject] = ()
) -> BatchResult:
    """`write_batch` for rows in COLUMNS order (the writer's hot path builds no Cdr)."""
    rejects = list(rejects)
    written = 0
    async with conn.transaction():
        if rows:
            # in key order, so that concurrent writers lock alike
            rows = sorted(rows, key=row_identity)
            if await _copy_new(conn, rows):
                written = len(rows)
            else:
                written = await _merge(conn, rows)
        if rejects:
            await conn.executemany(INSERT_REJECT, [r.args() for r in rejects])
    return BatchResult(written, len(rejects))


async def _copy_new(conn: Conn, rows: Sequence[Row]) -> bool:
    """The fast path, for a batch of new calls only: claim them and store their rows by
    COPY, at the cost of a plain COPY. Returns False, having written nothing, as soon as one
    of the calls was claimed before (a unique violation undoes the savepoint alone)."""
    claims = [claim(r[SWITCH_AT], r[ACCOUNT_AT], r[CALL_ID_AT], r[STARTED_AT]) for r in rows]
    try:
        async with conn.transaction():  # a savepoint in write_rows' transaction
            await conn.copy_records_to_table("cdr_ids", records=claims, columns=CLAIM_COLUMNS)
            if await twins_elsewhere(conn, claims):  # claimed in the neighbouring month
                raise _ClaimedElsewhere
            await conn.copy_records_to_table("cdrs", records=rows, columns=list(COLUMNS))
    except (asyncpg.UniqueViolationError, _ClaimedElsewhere):
        return False
    return True


class _ClaimedElsewhere(Exception):
    """Undoes the fast path's savepoint: a call of the batch has a claim in another month."""


async def _merge(conn: Conn, rows: Sequence[Row]) -> int:
    """The general path: some calls of the batch were stored (or claimed) before."""
    await conn.copy_records_to_table(STAGE, records=rows, columns=list(COLUMNS))
    await conn.execute(CLAIM_IDS)  # the new calls of the batch
    await conn.execute(ALIGN)  # calls seen before keep their partition
    return int((await conn.execute(UPSERT)).split()[-1])


def _as_fields(cdr: Cdr) -> dict[str, str]:
    def text(value: Any) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bool):
            return "1" if value else "0"
        return "" if value is None else str(value)

    return {name: text(getattr(cdr, name)) for name in COLUMNS}
