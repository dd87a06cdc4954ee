"""Pruning a deck's schedule in Redis (`{deck:NAME}:schedule`: each version's effective
instant, epoch ms). Each publication writes the newest versions' instants; without pruning
the hash kept every version ever published, and every process reads it whole at each
refresh.

What still needs an entry: a call is priced by the highest version whose instant has come
by its start (authorize: now; an unauthorized call's late outcome or a carrier's buy price:
its answer, hours back at most — the call record lives 6 h). So the schedule keeps the
version in force KEEP_MS (7 days) before the publication and every later one; an older
version can no longer be chosen for any instant within that week and is dropped. Re-rating
reads the versions and their instants from PostgreSQL (`decks.effective_at`), never from
this hash, so it loses nothing.

A dropped version's compiled form is not deleted at once: calls authorized with it moments
ago may still be running and settle with it (their record names the version). Its key gets
an expiry of KEEP_MS instead, long past any call's end; publishing that version again (start-
up, `deck publish`) makes it persistent again."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from rating.keys import Keyspace

KEEP_MS = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class Pruned:
    keep: dict[int, int]  # version -> effective epoch ms
    drop: list[int]  # versions no instant within the window can choose


def prune(schedule: dict[int, int], now_ms: int, keep_ms: int = KEEP_MS) -> Pruned:
    """Keep the version in force at `now_ms - keep_ms` and every higher version; with none
    in force then (all instants later), keep them all."""
    cutoff = now_ms - keep_ms
    in_force = [v for v, ms in schedule.items() if ms <= cutoff]
    floor = max(in_force) if in_force else min(schedule, default=0)
    keep = {v: ms for v, ms in schedule.items() if v >= floor}
    return Pruned(keep, sorted(v for v in schedule if v < floor))


async def merged(
    redis: Redis, keys: Keyspace, name: str, schedule: dict[int, int]
) -> dict[int, int]:
    """The stored schedule with this publication's instants written over it."""
    raw = await redis.hgetall(keys.deck_schedule(name))
    stored = {int(v): int(ms) for v, ms in raw.items()}
    return {**stored, **schedule}
