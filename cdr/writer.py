"""The CDR writer: moves CDRs from the ledger's Redis streams to PostgreSQL.

For each shard stream, in order: take over entries dead writers left pending, re-read this
writer's own pending entries, then read new ones. A batch is stored in one transaction and
acknowledged only after the commit, and storing is idempotent, so a crash anywhere leaves
each CDR either pending (stored again later, harmlessly) or stored and acknowledged.
PostgreSQL being away only delays CDRs: the writer backs off and retries, the entries wait."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import asyncpg
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cdr.metrics import CdrMetrics
from cdr.model import (
    EPOCH,
    STARTED_AT,
    BadCdr,
    Row,
    flat_text_row,
    row_identity,
    row_is_final,
    stream_row,
    text_row,
)
from cdr.partitions import (
    DEFAULT_RETENTION_MONTHS,
    MIN_RETENTION_MONTHS,
    ensure_months,
    existing_months,
    months_ahead,
    months_of,
    retention_cutoff,
)
from cdr.store import DATA_ERRORS, BatchResult, Reject, prepare, write_rows
from cdr.stream import (
    CdrStream,
    Entry,
    ack_many,
    claim_idle_many,
    read_new_many,
    read_pending_many,
    wait_for_new,
    xinfo_groups_many,
)
from core.env import EnvReader, SettingsError
from rating.keys import Keyspace

log = logging.getLogger("tollgate.cdr.writer")

T = TypeVar("T")
FUTURE_SLACK = timedelta(days=1)  # a CDR starting later than this from now is bogus
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
TRIM_EVERY_S = 1.0  # a busy writer trims a stream at most this often, and when a round ends
IDLE_METRICS_S = 5.0  # an idle writer refreshes its backlog gauges this often
# asyncpg reports values it cannot encode as ValueError subclasses: also the rows' fault
ROW_ERRORS: tuple[type[Exception], ...] = (*DATA_ERRORS, ValueError)
PG_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def _us(at: datetime) -> int:
    """Microseconds since the epoch: how a text row holds its times."""
    return (at - EPOCH) // _US


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WriterSettings:
    group: str = "cdr-writer"
    consumer: str = field(default_factory=default_consumer)
    batch_size: int = 2000  # entries per transaction, over all streams (bench/cdr_ingest.py)
    block_ms: int = 1000  # how long an idle writer waits on the streams per round
    claim_idle_ms: int = 30_000  # pending this long at another consumer: it is dead
    retention_months: int = DEFAULT_RETENTION_MONTHS  # older CDRs go to cdr_rejects
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.retention_months < MIN_RETENTION_MONTHS:
            raise SettingsError(
                "TOLLGATE_CDR_RETENTION_MONTHS", f"must be >= {MIN_RETENTION_MONTHS}"
            )
        for name, value in (("BATCH_SIZE", self.batch_size), ("BLOCK_MS", self.block_ms)):
            if value <= 0:
                raise SettingsError(f"TOLLGATE_CDR_{name}", "must be > 0")
        if self.claim_idle_ms < 0:
            raise SettingsError("TOLLGATE_CDR_CLAIM_IDLE_MS", "must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WriterSettings:
        get = EnvReader("TOLLGATE_CDR_", env).get

        base = cls()
        return cls(
            group=get("GROUP", str, base.group),
            consumer=get("CONSUMER", str, base.consumer),
            batch_size=get("BATCH_SIZE", int, base.batch_size),
            block_ms=get("BLOCK_MS", int, base.block_ms),
            claim_idle_ms=get("CLAIM_IDLE_MS", int, base.claim_idle_ms),
            retention_months=get("RETENTION_MONTHS", int, base.retention_months),
        )


class CdrStoreUnavailable(RuntimeError):
    """PostgreSQL could not take a batch; its entries stay pending and will be retried."""

    def __init__(self, why: str) -> None:
        super().__init__(f"PostgreSQL unavailable: {why}")
        self.why = why


@dataclass(frozen=True, slots=True)
class _Batch:
    """Entries of one stream or several, stored in one transaction."""

    entries: list[tuple[CdrStream, list[Entry]]]  # acknowledged once the batch is stored
    rows: list[Row]  # at most one per call (switch, account, call id)
    starts: list[int]  # each row's started_at, epoch microseconds
    rejects: list[Reject]
    # where each row came from (stream key, entry), for a row PostgreSQL refuses
    origins: dict[tuple[str, str, str], tuple[str, Entry]]

    @property
    def size(self) -> int:
        return sum(len(entries) for _, entries in self.entries)


@dataclass(frozen=True, slots=True)
class DrainResult:
    """One round over every stream."""

    seen: int  # stream entries handled
    written: int  # rows inserted or replaced
    skipped: dict[str, str] = field(default_factory=dict)  # stream key -> why it was skipped


class CdrWriter:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        dsn: str,
        settings: WriterSettings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.redis = redis
        self.dsn = dsn
        self.settings = settings or WriterSettings()
        self.metrics = CdrMetrics(registry)
        s = self.settings
        self.streams = [
            CdrStream(redis, keys.cdr_stream(t), s.group, s.consumer, TRIM_EVERY_S)
            for t in keys.tags()
        ]
        self._conn: asyncpg.Connection[Any] | None = None
        self._months: set[datetime] = set()  # partitions known to exist
        self._metrics_at = -math.inf  # when the backlog gauges were last refreshed

    async def __aenter__(self) -> CdrWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except PG_ERRORS:
                conn.terminate()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Move CDRs until `stop` is set; outages of Redis or PostgreSQL are waited out."""
        delay = self.settings.backoff_min_s
        while not stop.is_set():
            try:
                seen = (await self._drain()).seen
                if delay > self.settings.backoff_min_s:
                    log.info("CDR writer recovered")
                delay = self.settings.backoff_min_s
                if not seen and not stop.is_set():
                    await wait_for_new(
                        self.redis, self.streams, self.settings.batch_size, self.settings.block_ms
                    )
                continue
            except CdrStoreUnavailable as exc:
                log.warning("CDRs wait in Redis: %s; retrying in %.1f s", exc.why, delay)
            except (RedisError, OSError) as exc:
                self.metrics.write_errors.labels("redis").inc()
                log.warning("CDR streams unreachable: %s; retrying in %.1f s", exc, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.settings.backoff_max_s)

    async def drain_once(self) -> int:
        """Move everything available now (claimed, own pending, new); returns rows written.
        Raises CdrStoreUnavailable (entries stay pending) or Redis connection errors."""
        return (await self._drain()).written

    async def drain_round(self) -> DrainResult:
        """Like drain_once, and says which streams were skipped and why."""
        return await self._drain()

    async def _drain(self) -> DrainResult:
        """One round over every stream. Reading and converting run one batch ahead of
        storing: PostgreSQL stores a batch while this process reads and converts the next
        (a shard's batches stay in order)."""
        seen = written = 0
        skipped: dict[str, str] = {}
        ready: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)

        def skip(stream: CdrStream, exc: ResponseError) -> None:
            # this stream's own trouble (a clobbered key...): the others keep flowing
            self.metrics.write_errors.labels("redis").inc()
            log.error("CDR stream %s skipped this round: %s", stream.key, exc)
            skipped[stream.key] = str(exc)

        stopping = False  # the consumer gave up: the producer stops handing over

        async def produce() -> None:
            try:
                async for batch in self._batches(skipped, skip):
                    if stopping:
                        return
                    await ready.put(batch)
            except BaseException:
                if not stopping:
                    await ready.put(None)  # the consumer stops, then awaits this failure
                raise
            if not stopping:
                await ready.put(None)

        producer = asyncio.create_task(produce())
        try:
            while (batch := await ready.get()) is not None:
                # what a skipped stream read is not acknowledged: read again next round
                # (storing it meanwhile is harmless: storing is idempotent)
                kept = [(st, es) for st, es in batch.entries if st.key not in skipped]
                if not kept:
                    continue
                batch = replace(batch, entries=kept)
                written += await self._commit(batch, skip)
                seen += batch.size
            await producer
            for stream in self.streams:
                if stream.key not in skipped:
                    try:
                        await stream.trim_owed()
                    except ResponseError as exc:
                        skip(stream, exc)
        except BaseException:
            # What the producer read stays pending: read again later. Cancelling it is not
            # enough (a Redis read may swallow the cancellation): it also finds the queue
            # drained and `stopping` set, so it never blocks handing over.
            stopping = True
            producer.cancel()
            while not producer.done():
                while not ready.empty():
                    ready.get_nowait()
                await asyncio.wait([producer], timeout=0.05)
            if not producer.cancelled():
                producer.exception()  # retrieved: it does not matter any more
            raise
        finally:
            self.metrics.skipped.set(len(skipped))
            # an idle round has nothing new to show: 256 XINFO a second cost a cluster more
            # than the calls; after work or trouble the gauges are refreshed at once
            idle = not seen and not skipped and sys.exc_info()[0] is None
            if not idle or time.monotonic() - self._metrics_at >= IDLE_METRICS_S:
                await self.refresh_metrics()
        return DrainResult(seen, written, skipped)

    async def _batches(
        self, skipped: Mapping[str, str], skip: Callable[[CdrStream, ResponseError], None]
    ) -> AsyncIterator[_Batch]:
        """Every stream's claimed and own pending entries (rare: after a crash), then new
        entries of all streams together: one round trip per step over all the streams
        (there are 256 by default), not one per stream."""
        size = self.settings.batch_size
        for stream in self.streams:
            try:
                await stream.ensure_group()  # a round trip the first time only
            except ResponseError as exc:
                skip(stream, exc)
        # one round trip for each step over all streams, however many there are
        live = [s for s in self.streams if s.key not in skipped]
        due = [s for s in live if s.claim_due(self.settings.claim_idle_ms)]
        claims = await claim_idle_many(due, self.settings.claim_idle_ms, size)
        for stream, claimed in zip(due, claims, strict=True):
            if isinstance(claimed, ResponseError):
                skip(stream, claimed)
        live = [s for s in live if s.key not in skipped]
        owed = [s for s in live if s.may_have_pending]
        for stream, entries in zip(owed, await read_pending_many(owed, size), strict=True):
            try:
                if isinstance(entries, ResponseError):
                    raise entries
                while entries:
                    yield self._convert([(stream, entries)])
                    if len(entries) < size:
                        break
                    entries = await stream.read_pending(size, entries[-1].id)
            except ResponseError as exc:
                skip(stream, exc)
        busy = [s for s in self.streams if s.key not in skipped]
        while busy:
            # a batch holds about `size` entries however many streams have some
            count = -(-size // len(busy))
            read: list[tuple[CdrStream, list[Entry]]] = []
            full: list[CdrStream] = []
            for stream, got in zip(busy, await read_new_many(busy, count), strict=True):
                if isinstance(got, ResponseError):
                    skip(stream, got)
                elif got:
                    read.append((stream, got))
                    if len(got) == count:
                        full.append(stream)  # may have more: read again
            if read:
                yield self._convert(read)
            busy = [s for s in full if s.key not in skipped]

    # -- one batch -----------------------------------------------------------------------------

    def _convert(self, read: list[tuple[CdrStream, list[Entry]]]) -> _Batch:
        now = datetime.now(UTC)
        oldest = _us(retention_cutoff(now, self.settings.retention_months))
        latest = _us(now + FUTURE_SLACK)
        best: dict[tuple[str, str, str], Row] = {}
        starts: dict[tuple[str, str, str], int] = {}
        origins: dict[tuple[str, str, str], tuple[str, Entry]] = {}
        rejects: list[Reject] = []
        for stream, entries in read:
            key = stream.key
            for e in entries:
                if not e.flat:
                    continue  # deleted from the stream while pending: nothing left to store
                row = flat_text_row(e.flat, e.id)
                if row is None:  # the careful path, which names what is wrong
                    try:
                        row = text_row(stream_row(e.fields(), e.id))
                    except BadCdr as exc:
                        rejects.append(Reject(key, e.id, str(exc), e.printable()))
                        continue
                started_us = int(row[STARTED_AT])
                if not oldest <= started_us < latest:
                    started = (EPOCH + started_us * _US).isoformat()
                    why = f"started_at {started} is outside the retention window"
                    rejects.append(Reject(key, e.id, why, e.printable()))
                    continue
                identity = row_identity(row)
                kept = best.get(identity)
                # one row per call in a batch (the upsert needs it): a final record replaces
                # a non-final one (Cdr.supersedes)
                if kept is None or (row_is_final(row) and not row_is_final(kept)):
                    best[identity] = row
                    starts[identity] = started_us
                    origins[identity] = (key, e)
        return _Batch(read, list(best.values()), list(starts.values()), rejects, origins)

    async def _commit(self, batch: _Batch, skip: Callable[[CdrStream, ResponseError], None]) -> int:
        """Store, then (only then) acknowledge, every stream's entries at once."""
        result = await self._store(batch)
        acks = [(stream, [e.id for e in entries]) for stream, entries in batch.entries]
        for (stream, _), outcome in zip(acks, await ack_many(acks), strict=True):
            if outcome is not None:
                skip(stream, outcome)  # stored: stays pending, stored again harmlessly
        self.metrics.written.inc(result.written)
        self.metrics.rejects.inc(result.rejected)
        if result.rejected:
            keys = sorted({r.stream for r in batch.rejects})
            log.warning("%d CDR(s) of %s kept in cdr_rejects", result.rejected, ", ".join(keys))
        return result.written

    async def _store(self, batch: _Batch) -> BatchResult:
        rows, rejects = batch.rows, batch.rejects
        try:
            conn = await self._connection()
            days = {us // _DAY_US for us in batch.starts}
            needed = months_of(EPOCH + timedelta(days=d) for d in days)
            needed |= months_ahead(datetime.now(UTC))
            missing = needed - self._months
            if missing:
                await ensure_months(conn, missing)
                self._months |= missing
            try:
                return await write_rows(conn, "", rows, rejects, batch.starts)
            except ROW_ERRORS as exc:
                log.warning("PostgreSQL refused a CDR batch (%s): storing it row by row", exc)
                return await self._store_singly(conn, batch)
        except PG_ERRORS as exc:
            self.metrics.write_errors.labels("postgresql").inc()
            await self._drop_connection()
            raise CdrStoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def _store_singly(self, conn: asyncpg.Connection[Any], batch: _Batch) -> BatchResult:
        """Find the rows PostgreSQL refuses, so that they alone end up in cdr_rejects."""
        written = rejected = 0
        refused = list(batch.rejects)
        for row in batch.rows:
            try:
                one = await write_rows(conn, "", [row])
            except ROW_ERRORS as exc:
                why = f"refused by PostgreSQL: {exc}"
                stream, entry = batch.origins[row_identity(row)]
                refused.append(Reject(stream, entry.id, why, entry.printable()))
                continue
            written += one.written
            rejected += one.rejected
        rest = await write_rows(conn, "", [], refused)
        return BatchResult(written, rejected + rest.rejected)

    async def _connection(self) -> asyncpg.Connection[Any]:
        if self._conn is None or self._conn.is_closed():
            conn: asyncpg.Connection[Any] = await asyncpg.connect(
                self.dsn,
                timeout=self.settings.connect_timeout_s,
                command_timeout=self.settings.command_timeout_s,
            )
            try:
                await prepare(conn)
                self._months = await existing_months(conn)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # its state is unknown: a fresh one is made on the next batch

    # -- metrics -------------------------------------------------------------------------------

    async def refresh_metrics(self) -> None:
        """Backlog and age of the oldest unacknowledged entry, per stream."""
        self._metrics_at = time.monotonic()
        try:
            seconds, micros = await self.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            groups = await xinfo_groups_many(self.streams)  # one round trip for all
            for stream, info in zip(self.streams, groups, strict=True):
                if isinstance(info, ResponseError):
                    continue  # missing (nothing owed) or broken (the drain reports it)
                try:
                    b = await stream.backlog(info)
                except ResponseError:
                    continue
                age = max(0, now_ms - b.oldest_ms) / 1000 if b.oldest_ms is not None else 0.0
                self.metrics.backlog.labels(stream.key).set(b.total)
                self.metrics.oldest_pending.labels(stream.key).set(age)
        except (RedisError, OSError) as exc:
            log.warning("CDR backlog metrics not refreshed: %s", exc)
