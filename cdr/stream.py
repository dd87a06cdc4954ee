"""One shard's CDR stream, read through a Redis consumer group.

An entry stays pending in the group until it is acknowledged, and the writer acknowledges
only what PostgreSQL has committed: whatever happens to a writer, its entries are either
re-read by it after a restart (its own pending list) or claimed by another writer once
idle long enough. Acknowledged entries are then trimmed away."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from cdr.model import BadCdr
from core.redis_cluster import is_cluster

RawFields = Mapping[Any, Any]  # bytes or str, as the client decodes


class Entry(NamedTuple):
    """One stream entry (a tuple: one is made for every CDR read, so cheaply)."""

    stream: str
    id: str
    # field, value, field, value... as the client returns them (bytes, or str from a
    # decoding client); empty: the entry was deleted from the stream while pending
    flat: Sequence[Any]

    @property
    def raw(self) -> RawFields:
        """Field -> value, undecoded."""
        flat = self.flat
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def fields(self) -> dict[str, str]:
        """Strictly decoded; raises BadCdr naming a field that is not UTF-8."""
        raw = self.raw
        try:
            try:  # bytes, as the writers' clients read them: the common case, decoded fast
                return {k.decode(): v.decode() for k, v in raw.items()}
            except AttributeError:
                pass
            return {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in raw.items()
            }
        except UnicodeDecodeError:
            bad = next(k for k, v in raw.items() if not (_is_utf8(k) and _is_utf8(v)))
            raise BadCdr(_loose(bad), "not valid UTF-8") from None

    def printable(self) -> dict[str, str]:
        """Lossless enough to keep in a reject (JSON cannot hold NUL or invalid UTF-8)."""
        return {_loose(k): _loose(v) for k, v in self.raw.items()}


def raw_reader(redis: Redis) -> Redis:
    """A client on the same connections whose XREADGROUP replies are left as Redis sent
    them: an entry's fields stay one flat list, instead of a dict built per entry (a tenth
    of the CDR writer's time). Redis Cluster keeps its own client (it routes by command)."""
    if is_cluster(redis):
        return redis
    reader = Redis(connection_pool=redis.connection_pool)
    reader.set_response_callback("XREADGROUP", _as_sent)
    return reader


def _as_sent(response: Any, **options: Any) -> Any:
    return response


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int  # delivered to a consumer of the group, not acknowledged
    undelivered: int  # not yet read by the group
    oldest_ms: int | None  # entry id time of the oldest of both, None if there is none

    @property
    def total(self) -> int:
        return self.pending + self.undelivered


class CdrStream:
    def __init__(
        self, redis: Redis, key: str, group: str, consumer: str, trim_every_s: float = 0.0
    ) -> None:
        self.redis = redis
        self.reader = raw_reader(redis)
        self.key = key
        self.group = group
        self.consumer = consumer
        # Trimming costs three round trips: a busy reader trims at most this often, and
        # calls trim_owed() when it pauses (0: after every acknowledgement).
        self.trim_every_s = trim_every_s
        self._group_ready = False
        self._untrimmed = False
        self._trimmed_at = 0.0
        self.active_at = time.monotonic()  # when new entries were last read (idle polling)
        # entries delivered to this consumer and maybe not acknowledged: read as pending
        # first. False once a read of the pending list found it empty: an idle reader of
        # 256 streams then skips 256 reads a round.
        self.may_have_pending = True
        self._claimed_at = -math.inf

    def claim_due(self, min_idle_ms: int) -> bool:
        """Whether to look for entries dead consumers left (XAUTOCLAIM) this round: at most
        every half `min_idle_ms`, since nothing younger can be claimed. An idle reader of
        256 streams otherwise sends 256 claims a round that find nothing."""
        now = time.monotonic()
        if now - self._claimed_at < min_idle_ms / 2000:
            return False
        self._claimed_at = now
        return True

    def note_read(self, entries: Sequence[Any]) -> None:
        """New entries were delivered to this consumer (they are pending until acked)."""
        if entries:
            self.active_at = time.monotonic()
            self.may_have_pending = True

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing, reading from the very beginning."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def claim_idle(self, min_idle_ms: int, count: int, cursor: str = "0-0") -> int:
        """Take over entries other consumers (dead writers) left pending too long; they are
        then read as this consumer's own. Entries deleted meanwhile leave the pending list."""
        claimed = 0
        while True:
            # not JUSTID: the client then drops the cursor; the entries are re-read as pending
            cursor_raw, entries, *_ = await self._call(
                self.redis.xautoclaim(
                    self.key, self.group, self.consumer, min_idle_ms, cursor, count
                )
            )
            claimed += len(entries)
            self.may_have_pending |= bool(entries)
            cursor = _text(cursor_raw)
            if cursor == "0-0":
                return claimed

    async def read_pending(self, count: int, after: str = "0") -> list[Entry]:
        """This consumer's entries delivered but not acknowledged (after a crash or a failed
        batch), oldest first, from just after the entry id `after`."""
        entries = await self._read(after, count, None)
        if after == "0" and not entries:
            self.may_have_pending = False
        return entries

    async def read_new(self, count: int) -> list[Entry]:
        entries = await self._read(">", count, None)
        self.note_read(entries)
        return entries

    async def ack(self, ids: Sequence[str]) -> None:
        if ids:
            await self._call(self.redis.xack(self.key, self.group, *ids))
            if self.note_acked():
                await self.trim_owed()

    def note_acked(self) -> bool:
        """Entries were acknowledged: owes a trim. Whether it is due now."""
        self._untrimmed = True
        return time.monotonic() - self._trimmed_at >= self.trim_every_s

    async def trim_owed(self) -> int:
        """Trim if something was acknowledged since the last trim."""
        if not self._untrimmed:
            return 0
        self._untrimmed = False
        self._trimmed_at = time.monotonic()
        return await self.trim()

    async def trim(self) -> int:
        """Delete entries every group of the stream has acknowledged: everything before the
        oldest entry some group still needs (its oldest pending or first unread). Only ever
        moves forward, so a stale view can only trim less."""
        groups = await self._call(self.redis.xinfo_groups(self.key))
        keep: list[str] = []
        for g in groups:
            needed = _next_id(_text(g["last-delivered-id"]))
            if int(g["pending"]):
                summary = await self._call(self.redis.xpending(self.key, _text(g["name"])))
                if summary["min"] is not None:  # None: all acknowledged since XINFO
                    needed = _text(summary["min"])
            keep.append(needed)
        if not keep:
            return 0
        return int(
            await self.redis.xtrim(self.key, minid=min(keep, key=_id_key), approximate=False)
        )

    async def backlog(self, groups: Any = None) -> Backlog:
        """What this group has not acknowledged yet, for the metrics (`groups`: the
        stream's XINFO GROUPS, when read already)."""
        if groups is None:
            groups = await self._call(self.redis.xinfo_groups(self.key))
        info = next((g for g in groups if _text(g["name"]) == self.group), None)
        if info is None:
            length = int(await self.redis.xlen(self.key))
            first = await self.redis.xrange(self.key, count=1)
            return Backlog(0, length, _id_ms(_text(first[0][0])) if first else None)
        pending = int(info["pending"])
        lag = info.get("lag")
        last = _text(info["last-delivered-id"])
        # lag is unknown after deletions past the group's position: the length bounds it
        undelivered = int(lag) if lag is not None else int(await self.redis.xlen(self.key))
        oldest: list[int] = []
        if pending:
            summary = await self.redis.xpending(self.key, self.group)
            if summary["min"] is not None:
                oldest.append(_id_ms(_text(summary["min"])))
        if undelivered:
            first = await self.redis.xrange(self.key, min=f"({last}", count=1)
            if first:
                oldest.append(_id_ms(_text(first[0][0])))
        return Backlog(pending, undelivered, min(oldest) if oldest else None)

    async def _read(self, id_: str, count: int, block_ms: int | None) -> list[Entry]:
        res = await self._call(
            self.reader.xreadgroup(
                self.group, self.consumer, {self.key: id_}, count=count, block=block_ms
            )
        )
        return [e for entries in _by_stream(res).values() for e in entries]

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._group_ready = False  # the stream or group vanished: recreate next time
            raise


async def read_new_many(
    streams: Sequence[CdrStream], count: int
) -> list[list[Entry] | ResponseError]:
    """New entries of each stream (at most `count` each), read in one round trip (one per
    node on Redis Cluster, which refuses one command over keys of several slots): a
    pipeline of one XREADGROUP per stream. A stream's own error (a clobbered key, a lost
    group) is returned in its place, so the other streams keep flowing."""
    replies = await _each(
        streams,
        lambda p, s: p.xreadgroup(s.group, s.consumer, {s.key: ">"}, count=count),
        streams[0].reader if streams else None,
    )
    out = [
        r if isinstance(r, ResponseError) else _by_stream(r).get(s.key, [])
        for s, r in zip(streams, replies, strict=True)
    ]
    for s, got in zip(streams, out, strict=True):
        if not isinstance(got, ResponseError):
            s.note_read(got)
    return out


async def ack_many(
    acks: Sequence[tuple[CdrStream, Sequence[str]]],
) -> list[ResponseError | None]:
    """Acknowledge each stream's entries: one XACK per stream, all in one pipeline (one
    round trip; one per node on Redis Cluster) instead of one connection per stream. A
    stream's own error is returned in its place (None: acknowledged, or nothing to); streams
    due a trim are then trimmed."""
    streams = [s for s, ids in acks if ids]
    ids_of = {s.key: ids for s, ids in acks}
    sent = await _each(streams, lambda p, s: p.xack(s.key, s.group, *ids_of[s.key]))
    replies = iter(sent)
    out: list[ResponseError | None] = []
    for s, ids in acks:
        if not ids:
            out.append(None)
            continue
        reply = next(replies)
        if isinstance(reply, ResponseError):
            out.append(reply)
            continue
        try:
            if s.note_acked():
                await s.trim_owed()
        except ResponseError as exc:
            out.append(exc)
            continue
        out.append(None)
    return out


async def claim_idle_many(
    streams: Sequence[CdrStream], min_idle_ms: int, count: int
) -> list[int | ResponseError]:
    """`claim_idle` of every stream: the first XAUTOCLAIM of each in one pipeline (one round
    trip for hundreds of streams); a stream with more to claim goes on alone."""
    replies = await _each(
        streams, lambda p, s: p.xautoclaim(s.key, s.group, s.consumer, min_idle_ms, "0-0", count)
    )
    out: list[int | ResponseError] = []
    for s, reply in zip(streams, replies, strict=True):
        if isinstance(reply, ResponseError):
            out.append(reply)
            continue
        cursor_raw, entries, *_ = reply
        claimed, cursor = len(entries), _text(cursor_raw)
        s.may_have_pending |= bool(entries)
        if cursor != "0-0":
            try:
                claimed += await s.claim_idle(min_idle_ms, count, cursor)
            except ResponseError as exc:
                out.append(exc)
                continue
        out.append(claimed)
    return out


async def read_pending_many(
    streams: Sequence[CdrStream], count: int
) -> list[list[Entry] | ResponseError]:
    """The first `count` of each stream's own pending entries, in one pipeline."""
    if not streams:
        return []
    replies = await _each(
        streams,
        lambda p, s: p.xreadgroup(s.group, s.consumer, {s.key: "0"}, count=count),
        streams[0].reader,
    )
    out = [
        r if isinstance(r, ResponseError) else _by_stream(r).get(s.key, [])
        for s, r in zip(streams, replies, strict=True)
    ]
    for s, pending in zip(streams, out, strict=True):
        if not pending:  # an error is not "empty": a stream in trouble is read again
            s.may_have_pending = False
    return out


async def xinfo_groups_many(streams: Sequence[CdrStream]) -> list[Any]:
    """XINFO GROUPS of every stream in one pipeline (an error in the place of a stream's)."""
    return await _each(streams, lambda p, s: p.xinfo_groups(s.key))


async def _each(
    streams: Sequence[CdrStream], command: Any, client: Redis | None = None
) -> list[Any]:
    """One command per stream in one pipeline; a stream's ResponseError in its place (a
    lost group marks the stream to recreate it), anything else raised."""
    if not streams:
        return []
    async with (client or streams[0].redis).pipeline(transaction=False) as pipe:
        for s in streams:
            command(pipe, s)
        replies = await pipe.execute(raise_on_error=False)
    for s, reply in zip(streams, replies, strict=True):
        if isinstance(reply, ResponseError):
            if "NOGROUP" in str(reply):
                s._group_ready = False
        elif isinstance(reply, BaseException):
            raise reply
    return list(replies)


async def wait_for_new(
    redis: Redis, streams: Sequence[CdrStream], count: int, block_ms: int
) -> int:
    """Block until any of the streams has new entries (delivered to, hence pending for, this
    consumer) or `block_ms` passed; returns how many arrived. One command for all streams;
    on Redis Cluster, which refuses one command over keys of several slots, one XREADGROUP
    per stream instead (see _poll_per_stream)."""
    if not streams:
        return 0
    if is_cluster(redis):
        return await _poll_per_stream(redis, streams, count, block_ms)
    first = streams[0]
    res = await redis.xreadgroup(
        first.group,
        first.consumer,
        {s.key: ">" for s in streams},
        count=count,
        block=block_ms,
    )
    got = _by_stream(res)
    for s in streams:  # delivered to this consumer: the next round reads them as pending
        s.note_read(got.get(s.key, []))
    return sum(len(entries) for entries in got.values())


CLUSTER_POLL_MS = 50  # how long a cluster reader sleeps between polls while calls flow
CLUSTER_IDLE_POLL_MS = 1000  # ... and at most, once the streams have long been quiet
IDLE_SHARE = 0.1  # the pause grows with the quiet: a tenth of it, between the two


def poll_pause_s(streams: Sequence[CdrStream]) -> float:
    """How long to sleep before the next poll: 50 ms while entries keep coming; after a
    quiet stretch a tenth of it, up to 1 s (reached after 10 s without a CDR). The first
    CDR after a long quiet waits up to that pause; the next ones are read at once (a poll
    that finds entries resets the pause)."""
    quiet = time.monotonic() - max(s.active_at for s in streams)
    return min(max(CLUSTER_POLL_MS / 1000, quiet * IDLE_SHARE), CLUSTER_IDLE_POLL_MS / 1000)


async def _poll_per_stream(
    redis: Redis, streams: Sequence[CdrStream], count: int, block_ms: int
) -> int:
    """Non-blocking XREADGROUP on every stream, pipelined (the cluster client sends one
    batch per node), repeated until something arrives or `block_ms` passed, more slowly
    the longer the streams have been quiet (poll_pause_s). Blocking reads would hold a
    connection per stream; polling costs one round trip per node."""
    deadline = asyncio.get_running_loop().time() + block_ms / 1000
    while True:
        # the caller has just read every stream and found nothing: pause before polling
        remaining = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, min(poll_pause_s(streams), remaining)))
        for s in streams:
            await s.ensure_group()
        async with redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xreadgroup(s.group, s.consumer, {s.key: ">"}, count=count)
            replies = await pipe.execute(raise_on_error=False)
        for s, reply in zip(streams, replies, strict=True):
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                s._group_ready = False  # recreated at the next poll
            elif isinstance(reply, Exception):
                raise reply
        got = 0
        for s, reply in zip(streams, replies, strict=True):
            if not isinstance(reply, Exception):
                entries = _by_stream(reply).get(s.key, [])
                s.note_read(entries)
                got += len(entries)
        if got or asyncio.get_running_loop().time() >= deadline:
            return got


def _by_stream(res: Any) -> dict[str, list[Entry]]:
    """XREADGROUP replies come as a list of [stream, entries] (RESP2) or a dict (RESP3);
    an entry's fields as Redis sent them (a flat list, see raw_reader) or as a dict."""
    if not res:
        return {}
    pairs = res.items() if isinstance(res, dict) else res
    out: dict[str, list[Entry]] = {}
    for stream, entries in pairs:
        key = _text(stream)
        out[key] = [
            Entry(key, eid.decode() if type(eid) is bytes else str(eid), _flat(raw))
            for eid, raw in entries
            if eid is not None
        ]
    return out


def _flat(raw: Any) -> Sequence[Any]:
    if type(raw) is list or not raw:  # as sent (see raw_reader), or deleted while pending
        return raw or ()
    if isinstance(raw, Mapping):
        return [x for pair in raw.items() for x in pair]
    return raw  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_utf8(value: Any) -> bool:
    if not isinstance(value, bytes):
        return True
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _loose(value: Any) -> str:
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\\x00")


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _id_ms(entry_id: str) -> int:
    return _id_key(entry_id)[0]


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"
