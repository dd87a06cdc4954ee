"""Redis loses its data (restart without persistence): balances come back from PostgreSQL
as entries minus the calls already billed, never as the entries alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from cdr.writer import CdrWriter
from rating.account_store import AccountStore
from rating.accounts import Account, AccountNotFound
from rating.deck import Deck
from rating.ledger import CallRequest, Ledger, Outcome
from runtime.recovery import catch_up, repair_forever
from runtime.services import Services
from tests.conftest import AccountFactory, drop_prefix
from tests.e2e.rig import free_tcp_port
from tollgate.metrics import Metrics

PLN = 1_000_000
T0 = datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Europe/Warsaw"))


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
    assert again.decks == 0  # compiled in Redis already: start-up does not load it again
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


async def test_redis_failing_after_postgresql_committed_is_repaired_by_the_next_bill_run(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`account create` and `topup` write PostgreSQL first; when Redis fails right after,
    the next run (or serve's repair loop) finds the account behind and mends it."""
    dead = Redis(
        host="127.0.0.1",
        port=free_tcp_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    cut = AccountStore(
        svc.accounts.pool,
        Ledger(dead, svc.settings.keyspace, svc.ledger.decks, svc.ledger.settings),
    )
    try:
        with pytest.raises(RedisConnectionError):
            await cut.create(Account("late-create", deck="retail"))
        topped = await make_account(balance=PLN)
        with pytest.raises(RedisConnectionError):
            await cut.add_entry(topped.id, "topup", 4 * PLN, "card-9", at=datetime.now(UTC))
        with pytest.raises(RedisConnectionError):
            await cut.update(topped.id, max_calls=7)
    finally:
        await dead.aclose()
    # PostgreSQL has all three; Redis has none of them
    with pytest.raises(AccountNotFound):
        await svc.accounts.live("late-create")
    assert (await svc.accounts.live(topped.id)).balance == PLN
    healthy = await make_account(balance=PLN)

    from tollgate.cli import build_parser

    args = build_parser().parse_args(["bill", "run", "--now", "2026-11-20T12:00+01:00"])
    capsys.readouterr()
    await args.run(svc, args)
    report = json.loads(capsys.readouterr().out)
    assert sorted((r["account"], r["drift"]) for r in report["repaired"]) == sorted(
        [("late-create", "rebuilt"), (topped.id, "entries")]
    )
    assert report["failed"] == []
    assert (await svc.accounts.live("late-create")).balance == 0
    assert (await svc.accounts.live(topped.id)).balance == 5 * PLN
    assert (
        await svc.ledger.redis.hget(svc.settings.keyspace.account(topped.id), "max_calls")
    ) == b"7"
    grant = await svc.ledger.authorize(CallRequest("late-create", "rep-1", "601234567"))
    assert grant.reason == "INSUFFICIENT_CREDIT"  # known to the ledger again, with no money
    # the serve loop counts what it mends
    await svc.ledger.redis.hset(svc.settings.keyspace.account(healthy.id), "max_calls", "99")
    metrics = Metrics()
    task = asyncio.create_task(repair_forever(svc, 0.01, metrics.repaired))
    try:
        for _ in range(500):
            if metrics.ledger_repairs.labels("settings")._value.get() >= 1:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert metrics.ledger_repairs.labels("settings")._value.get() == 1
    assert metrics.ledger_repairs.labels("rebuilt")._value.get() == 0
    max_calls = await svc.ledger.redis.hget(svc.settings.keyspace.account(healthy.id), "max_calls")
    assert max_calls == str(healthy.max_calls).encode()


async def test_one_bad_account_does_not_stop_the_bill_run(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """An account whose Redis entry is broken beyond repair fails alone: every other account
    is billed, the failure is reported and the command exits non-zero."""
    accounts = [await make_account(balance=PLN, at=T0) for _ in range(3)]
    broken = accounts[1].id
    await svc.ledger.redis.delete(svc.settings.keyspace.account(broken))
    await svc.ledger.redis.set(svc.settings.keyspace.account(broken), "not a hash")

    from core.cliout import CliError
    from tollgate.cli import build_parser

    args = build_parser().parse_args(
        ["bill", "run", "--now", (T0 + timedelta(hours=1)).isoformat()]
    )
    capsys.readouterr()
    with pytest.raises(CliError) as err:
        await args.run(svc, args)
    assert err.value.code != 0 and broken in str(err.value)
    report = json.loads(capsys.readouterr().out)
    assert [f["account"] for f in report["failed"]] == [broken]
    # the others got their top-up invoices, including the one after the broken account
    assert sorted(d["account"] for d in report["documents"]) == sorted(
        a.id for a in accounts if a.id != broken
    )
