"""Sliding windows in Redis, one account at a time.

Detectors describe what an event adds and what they need to read on a Plan; the plan runs
as one Lua script call (`lua/observe.lua`), atomically, guarded by the event's id so that a
re-delivered event reads the same figures without counting twice. All keys of a plan carry
the account's hash tag, so the script runs unchanged on Redis Cluster."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

from rating.keys import Keyspace

T = TypeVar("T")
TTL_SLACK_S = 3600  # keys outlive their longest window a little: late events still count
LATE_SLACK_MS = 15 * 60_000  # windows keep this much before their span: out-of-order CDRs
NAMES_KEPT = 32  # key names remembered per account
_SAFE = re.compile(r"^[0-9A-Za-z+*#._-]{1,40}$")


def script_text() -> str:
    return (resources.files("abuse") / "lua" / "observe.lua").read_text(encoding="utf-8")


def part(text: str) -> str:
    """A key component from attacker-controlled text (caller ids): kept if tame, else hashed."""
    if _SAFE.match(text):
        return text
    return f"h{zlib.crc32(text.encode()):08x}"


class AccountKeys:
    """Names of an account's abuse keys: `{prefix}:{tag}:abuse:{account}:...`."""

    __slots__ = ("_names", "account", "base")

    def __init__(self, keyspace: Keyspace, account: str) -> None:
        self.account = account
        self.base = f"{keyspace.prefix}:{keyspace.tag(account)}:abuse:{account}:"
        self._names: dict[tuple[str, ...], str] = {}  # the rules' fixed names, built once

    def __call__(self, *parts: str) -> str:
        name = self._names.get(parts)
        if name is None:
            name = self.base + ":".join(parts)
            if len(self._names) < NAMES_KEPT:  # not every caller id or range dialled
                self._names[parts] = name
        return name


@dataclass(frozen=True, slots=True)
class SeqRun:
    length: int
    first: str  # digits of the lowest number of the run
    call_ids: tuple[str, ...]


class Slot(Generic[T]):
    """A figure the plan will read; its value is there once the plan has run."""

    __slots__ = ("_arg", "_convert", "_index", "_plan")

    def __init__(
        self, plan: Plan, index: int, convert: Callable[[Any, Any], T], arg: Any = None
    ) -> None:
        self._plan = plan
        self._index = index
        self._convert = convert  # a module function, not a closure: made for every read
        self._arg = arg

    @property
    def value(self) -> T:
        return self._convert(self._plan.result(self._index), self._arg)


class Plan:
    """An event's window operations, kept as one flat list (`OPS` gives each one's arity):
    a plan is built for every CDR, so it allocates as little as it can."""

    __slots__ = ("_head", "_keys", "_ops", "_reads", "_results", "at_ms", "fresh")

    def __init__(self, seen_key: str, event_id: str, at_ms: int, seen_keep_ms: int) -> None:
        self.at_ms = at_ms
        self._keys: dict[str, int] = {seen_key: 1}
        self._head: tuple[Any, ...] = (event_id, at_ms, seen_keep_ms, seen_keep_ms // 1000 + 60)
        self._ops: list[Any] = []
        self._reads = 0
        self._results: Sequence[Any] | None = None
        self.fresh = True

    def __bool__(self) -> bool:
        return bool(self._ops)

    def _key(self, key: str) -> int:
        return self._keys.setdefault(key, len(self._keys) + 1)

    def _read(self, convert: Callable[[Any, Any], T], arg: Any = None) -> Slot[T]:
        self._reads += 1
        return Slot(self, self._reads - 1, convert, arg)

    # -- writes ------------------------------------------------------------------------------

    def add(self, key: str, member: str, score: int, span_ms: int) -> None:
        """Put a member in a time window kept for `span_ms` (plus slack for late events)."""
        keep = span_ms + LATE_SLACK_MS
        self._ops += ("add", self._key(key), member, score, keep, _ttl(keep))

    def bump(
        self, key: str, bucket_ms: int, span_ms: int, at_ms: int | None = None, **amounts: int
    ) -> None:
        """Add amounts to the time bucket of this event (or of `at_ms`) in a bucketed window."""
        bucket = (self.at_ms if at_ms is None else at_ms) // bucket_ms
        keep = span_ms // bucket_ms + 1
        flat = [x for item in amounts.items() for x in item]
        self._ops += ("bump", self._key(key), bucket, keep, _ttl(span_ms), len(flat), *flat)

    def agg(
        self,
        key: str,
        sums_key: str,
        call_id: str,
        values: Sequence[int],
        score: int,
        span_ms: int,
    ) -> Slot[list[int]]:
        """Put a call with values in a window kept for exactly `span_ms`; read the window's
        count and the sums of each value (running sums: no scan of the window)."""
        member = "|".join([call_id, *map(str, values)])
        k = self._key(key)
        self._ops += ("agg", k, self._key(sums_key), key, member, score, span_ms, _ttl(span_ms))
        return self._read(_sums, len(values) + 1)

    # -- reads -------------------------------------------------------------------------------

    def sums(self, key: str, sums_key: str, n: int) -> Slot[list[int]]:
        """Count and sums of `n` values of an `agg` window, without adding to it."""
        self._ops += ("sums", self._key(key), self._key(sums_key), key)
        return self._read(_sums, n + 1)

    def count(self, key: str, span_ms: int) -> Slot[int]:
        """Members of a window in the `span_ms` up to this event."""
        self._ops += ("count", self._key(key), self.at_ms - span_ms, self.at_ms)
        return self._read(_int)

    def total(
        self,
        key: str,
        bucket_ms: int,
        span_ms: int,
        *names: str,
        at_ms: int | None = None,
        skip_current: bool = False,
    ) -> Slot[dict[str, int]]:
        """Sums of a bucketed window over the buckets covering `span_ms` up to this event
        (or `at_ms`; up to the bucket before with `skip_current`)."""
        at = self.at_ms if at_ms is None else at_ms
        high = at // bucket_ms - (1 if skip_current else 0)
        low = high - span_ms // bucket_ms + 1
        self._ops += ("total", self._key(key), low, high, len(names), *names)
        return self._read(_named, names)

    def seq(
        self, key: str, ids_key: str, digits: str, call_id: str, span_ms: int, cap: int
    ) -> Slot[SeqRun]:
        """Add a dialled number; read the run of consecutive numbers around it."""
        k = self._key(key)
        self._ops += ("seq", k, self._key(ids_key), digits, call_id, span_ms, _ttl(span_ms), cap)
        return self._read(_run)

    def overlap(
        self, key: str, call_id: str, start_ms: int, end_ms: int, span_ms: int
    ) -> Slot[int]:
        """Add a call's interval; read how many kept calls overlap it (itself included)."""
        keep = span_ms + LATE_SLACK_MS
        member = f"{call_id}|{start_ms}|{end_ms}"
        self._ops += ("overlap", self._key(key), member, start_ms, end_ms, keep, _ttl(keep))
        return self._read(_int)

    # -- running -----------------------------------------------------------------------------

    def command(self) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the script running this plan alone."""
        return command([self])

    def event(self, index: dict[str, int], out: list[Any]) -> None:
        """This plan as one event of a batch, put on `out` (the script's ARGV); its keys are
        numbered in `index` (grown)."""
        out += self._head
        out.append(len(self._keys))
        out += [index.setdefault(k, len(index) + 1) for k in self._keys]
        out.append(len(self._ops))
        out += self._ops

    def bind(self, reply: Any) -> None:
        """Take this plan's answer ({fresh, figures}) from the script's reply."""
        self.fresh = bool(int(reply[0]))
        self._results = reply[1]

    def result(self, index: int) -> Any:
        if self._results is None:
            raise RuntimeError("the plan has not run yet")
        return self._results[index]


def command(plans: Sequence[Plan]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one script call running `plans` in order; their keys must share a
    hash tag (one account's, or one shard's accounts) for Redis Cluster. ARGV is flat (no
    JSON to encode here and decode in the script): the number of events, then each one."""
    index: dict[str, int] = {}
    argv: list[Any] = [len(plans)]
    for plan in plans:
        plan.event(index, argv)
    return list(index), argv


def bind(plans: Sequence[Plan], reply: Any) -> None:
    """Hand each plan its answer from the reply of `command(plans)`."""
    for plan, answer in zip(plans, reply, strict=True):
        plan.bind(answer)


def _int(value: Any, _: Any) -> int:
    return int(value)


def _sums(value: Any, n: int) -> list[int]:
    """A count and n-1 sums, zeros where the window had none yet."""
    out = [int(x) for x in value[:n]]
    return out + [0] * (n - len(out)) if len(out) < n else out


def _named(value: Any, names: tuple[str, ...]) -> dict[str, int]:
    return dict(zip(names, map(int, value), strict=True))


def _run(value: Any, _: Any) -> SeqRun:
    return SeqRun(int(value[0]), _text(value[1]), tuple(_text(x) for x in value[2]))


def _ttl(keep_ms: int) -> int:
    return keep_ms // 1000 + TTL_SLACK_S


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
