"""A deck's schedule in Redis is pruned at each publication to what calls need: the version
in force a week back and every later one. Re-rating, which reads PostgreSQL, keeps every
version; a dropped version's compiled form expires instead of vanishing under a call."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rating.deck import Deck
from rating.deck_draft import epoch_ms
from rating.deck_schedule import KEEP_MS, prune
from rating.deck_store import effective_instants, import_deck, publish_stored
from rating.ledger import CallRequest, Outcome
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
MOBILE = "+48601234567"
T = 1_790_000_000_000  # a pinned instant, epoch ms
DAY = 86_400_000


def test_the_version_in_force_a_week_back_and_later_ones_are_kept() -> None:
    week = T - KEEP_MS
    got = prune({1: 0, 2: week - 10 * DAY, 3: week - 1, 4: T - DAY, 5: T + DAY}, T)
    assert (sorted(got.keep), got.drop) == ([3, 4, 5], [1, 2])
    got = prune({1: 0, 2: week, 3: week + 1}, T)  # in force exactly at the edge: kept
    assert (sorted(got.keep), got.drop) == ([2, 3], [1])
    got = prune({4: T + DAY, 5: T + 2 * DAY}, T)  # none in force yet: all kept
    assert (sorted(got.keep), got.drop) == ([4, 5], [])
    # a higher version with an earlier instant supersedes a lower one in force later
    got = prune({1: week - DAY, 2: week - 2 * DAY, 3: T}, T)
    assert (sorted(got.keep), got.drop) == ([2, 3], [1])
    assert prune({}, T).keep == {}


def priced(deck: Deck, rate: int) -> Deck:
    rows = tuple(replace(r, rate=rate) if r.prefix == "4860" else r for r in deck.rows)
    return replace(deck, rows=rows, sha256=f"rate-{rate}-{uuid.uuid4().hex}")


async def test_publishing_prunes_the_schedule_and_calls_keep_their_prices(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    keys = svc.settings.keyspace
    a = await make_account(balance=10 * PLN)
    now = datetime.now(UTC)
    versions = {
        2: (now - timedelta(days=30), 100_000),
        3: (now - timedelta(days=10), 110_000),  # in force a week back
        4: (now - timedelta(days=3), 120_000),  # in force now
        5: (now + timedelta(days=5), 130_000),  # scheduled
    }
    async with svc.pool.acquire() as conn:
        for version, (effective_at, rate) in versions.items():
            stored, created = await import_deck(
                conn, priced(retail, rate), "test", effective_at=effective_at
            )
            assert (created, stored.version) == (True, version)
            await publish_stored(conn, svc.redis, keys, stored.name, stored.version)
        in_pg = await effective_instants(conn, retail.name)
    svc.ledger.decks.invalidate()

    schedule = await svc.redis.hgetall(keys.deck_schedule(retail.name))
    assert {int(v): int(ms) for v, ms in schedule.items()} == {
        v: epoch_ms(at.replace(microsecond=at.microsecond // 1000 * 1000))
        for v, (at, _) in versions.items()
        if v >= 3
    }
    assert sorted(in_pg) == [1, 2, 3, 4, 5]  # re-rating still knows every version
    for version in (1, 2):  # no instant within the week chooses them: they expire
        ttl = await svc.redis.pttl(keys.deck_version(retail.name, version))
        assert 0 < ttl <= KEEP_MS
    for version in (3, 4, 5):
        assert await svc.redis.pttl(keys.deck_version(retail.name, version)) == -1

    async def minute_call(start: datetime) -> int:
        grant = await svc.ledger.authorize(
            CallRequest(a.id, f"c-{uuid.uuid4().hex[:12]}", MOBILE, "600100200", at=start)
        )
        assert grant.allowed, grant
        outcome = Outcome(
            True, 60, start + timedelta(seconds=60), "ANSWER", "16", answered_at=start
        )
        return (await svc.ledger.finish(a.id, grant.call_id, outcome)).rated_cost

    assert await minute_call(now) == 120_000
    assert await minute_call(now - timedelta(days=8)) == 110_000  # within the kept range
    assert await minute_call(now + timedelta(days=6)) == 130_000
