"""The number of hash tags Redis was written with, and moving to another number.

Every key of an account carries the tag `{sN}`, N = crc32(account) mod TOLLGATE_SHARDS, so a
process configured with another count would look for accounts where they are not. Redis
therefore records the count (`layout_shards`) and a process configured otherwise refuses to
start (`LayoutMismatch`). `retag` moves the keys: with the switches, the CDR writer and the
abuse detector stopped and their streams drained, it copies each account's keys to its new
tag (DUMP/RESTORE keeps values and TTLs; a cluster allows no RENAME across slots), deletes the
old ones, and records the new count last. It may be interrupted and run again: keys already
at their new tag are left as they are."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from rating.keys import Keyspace

# the per-account kinds of key: `{prefix}:{tag}:{kind}:{account}...`
ACCOUNT_KINDS = ("acct", "open", "openin", "call", "abuse")
LEGACY_SHARDS = 16  # the count every version before the count was recorded used by default


class LayoutMismatch(RuntimeError):
    """Redis holds keys written with another number of hash tags than configured."""

    def __init__(self, recorded: int | None, configured: int) -> None:
        held = (
            f"{recorded} hash tags"
            if recorded is not None
            else f"keys of a version that did not record its hash tags ({LEGACY_SHARDS}"
            " unless TOLLGATE_SHARDS said otherwise)"
        )
        super().__init__(
            f"Redis holds {held} but TOLLGATE_SHARDS={configured}: set TOLLGATE_SHARDS to"
            f" {recorded or 'the count it had'}, or move the keys with"
            f" `tollgate redis retag --from {recorded or LEGACY_SHARDS}`"
        )
        self.recorded = recorded
        self.configured = configured


class RetagRefused(RuntimeError):
    """Moving the keys now would lose or misplace something (calls running, CDRs unread)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"cannot move the keys now: {why}")
        self.why = why


@dataclass(frozen=True, slots=True)
class Retagged:
    moved: int  # keys copied to their new tag
    kept: int  # keys already at their tag (an earlier, interrupted run)
    streams_dropped: int  # drained CDR streams of the old layout


async def ensure_layout(redis: Redis, keys: Keyspace) -> None:
    """Record the configured count in a Redis that has none, or check it against the one
    recorded. Raises LayoutMismatch."""
    recorded = await redis.get(keys.layout_shards())
    if recorded is None:
        # the call-layout marker is written at every start of `tollgate serve`: a Redis that
        # has it but no count was written by a version that did not record one
        if await redis.exists(keys.layout_marker()) and keys.shards != LEGACY_SHARDS:
            raise LayoutMismatch(None, keys.shards)
        await redis.set(keys.layout_shards(), keys.shards, nx=True)
        recorded = await redis.get(keys.layout_shards())  # another process may have won
    if recorded is not None and int(recorded) != keys.shards:
        raise LayoutMismatch(int(recorded), keys.shards)


async def retag(redis: Redis, old: Keyspace, new: Keyspace) -> Retagged:
    """Move every account's keys from `old`'s tags to `new`'s (same prefix)."""
    if old.prefix != new.prefix:
        raise ValueError("retag keeps the prefix")
    await _check_quiet(redis, old)
    moved = kept = 0
    for pattern in (f"{old.prefix}:{{s*}}:{kind}:*" for kind in ACCOUNT_KINDS):
        # listed before moving: a scan would also meet the keys it creates
        found = [_text(raw) async for raw in redis.scan_iter(match=pattern, count=1000)]
        for key in found:
            target = _moved_key(key, old, new)
            if target is None:
                continue
            if target == key:
                kept += 1
                continue
            await _move(redis, key, target)
            moved += 1
    dropped = 0
    if old.shards != new.shards:  # drained and empty (checked): writers recreate them
        for tag in old.tags():
            dropped += int(await redis.delete(old.cdr_stream(tag)))
            await redis.delete(old.expiry(tag))
    await redis.set(new.layout_shards(), new.shards)
    return Retagged(moved, kept, dropped)


async def _check_quiet(redis: Redis, keys: Keyspace) -> None:
    """No call open (its expiry entry would point at the old tag) and every CDR read and
    acknowledged by every group (the streams are per tag: they are not carried over)."""
    for tag in keys.tags():
        if await redis.zcard(keys.expiry(tag)):
            raise RetagRefused(f"calls are open ({keys.expiry(tag)}): stop the switches first")
    for tag in keys.tags():
        stream = keys.cdr_stream(tag)
        if not await redis.exists(stream):
            continue
        length = int(await redis.xlen(stream))
        groups = await redis.xinfo_groups(stream)
        if length and not groups:
            raise RetagRefused(f"{stream} holds {length} CDRs no writer has read")
        for g in groups:
            if int(g["pending"]) or int(g.get("lag") or 0):
                name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                raise RetagRefused(
                    f"{stream} has CDRs group {name} has not acknowledged: run the CDR writer"
                    " and the abuse detector until they are drained, then stop them"
                )


def _moved_key(key: str, old: Keyspace, new: Keyspace) -> str | None:
    """The key's name under the new count; None for a key that is not an account's."""
    head = f"{old.prefix}:"
    tag, colon, rest = key[len(head) :].partition(":")
    kind, colon2, tail = rest.partition(":")
    if not (colon and colon2) or kind not in ACCOUNT_KINDS:
        return None
    account = tail.partition(":")[0]  # account ids have no ':'
    if not account:
        return None
    if tag == new.tag(account):
        return key
    if tag != old.tag(account):
        return None  # not where either layout puts it: not ours to move
    return f"{new.prefix}:{new.tag(account)}:{rest}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def _move(redis: Redis, source: str, target: str) -> None:
    dumped = await redis.dump(source)
    if dumped is None:  # expired since the scan
        return
    ttl_ms = int(await redis.pttl(source))
    if ttl_ms == -2:  # expired between the two reads
        return
    await redis.restore(target, max(ttl_ms, 0), dumped, replace=True)
    await redis.delete(source)
