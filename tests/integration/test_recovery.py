"""Redis loses its data (restart without persistence): balances come back from PostgreSQL
as entries minus the calls already billed, never as the entries alone."""

from __future__ import annotations

from datetime import UTC, datetime

from cdr.writer import CdrWriter
from rating.deck import Deck
from rating.ledger import CallRequest, Outcome
from tests.conftest import AccountFactory, drop_prefix
from tollgate.recovery import catch_up
from tollgate.services import Services


async def test_lost_redis_is_rebuilt_with_call_costs(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10_000_000)
    g = await svc.ledger.authorize(CallRequest(a.id, "rec-1", "601234567"))
    await svc.ledger.finish(a.id, "rec-1", Outcome(True, 120, datetime.now(UTC), "ANSWER"))
    async with CdrWriter(svc.redis, svc.settings.keyspace, svc.settings.pg_dsn) as writer:
        assert await writer.drain_once() >= 1
    before = await svc.accounts.live(a.id)
    assert before.balance == 10_000_000 - 380_000 and g.allowed

    await drop_prefix(svc.redis, svc.settings.keyspace.prefix)  # Redis lost everything
    done = await catch_up(svc)
    assert done.rebuilt == (a.id,) and done.decks == 1
    after = await svc.accounts.live(a.id)
    assert (after.balance, after.spent, after.entries_total) == (
        before.balance,
        before.spent,
        before.entries_total,
    )
    again = await catch_up(svc)  # a second start-up changes nothing
    assert again.rebuilt == () and (await svc.accounts.live(a.id)).balance == before.balance
    # and the ledger works on the rebuilt account
    g2 = await svc.ledger.authorize(CallRequest(a.id, "rec-2", "601234567"))
    assert g2.allowed


async def test_lost_account_without_calls_is_rebuilt_from_its_entries(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=2_500_000)
    await drop_prefix(svc.redis, svc.settings.keyspace.prefix)
    done = await catch_up(svc)
    assert done.rebuilt == (a.id,)
    live = await svc.accounts.live(a.id)
    assert (live.balance, live.spent) == (2_500_000, 0)
