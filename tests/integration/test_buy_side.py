"""Buy side on the real PostgreSQL and Redis: exchange rates (`tollgate fx`), their copy in
Redis used by routing, and re-rating what routed calls cost the operator
(`tollgate cdr rerate --buy`) with the version in force at each call's start; the margin
report reads the result; a second run changes nothing."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from rating.carrier_store import CarrierStore, mirrored_fx
from rating.carriers import Carrier
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory, install_deck, settings_env
from tests.integration.test_carriers import buy, cli

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 11:00 in Warsaw


async def test_fx_cli_redis_copy_and_routing_in_another_currency(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert svc.pool is not None
    await make_account(id="alice")
    await install_deck(svc, buy("b-eur", "48,Poland,0,0.0050,60,1,0,*\n", currency="EUR"))
    await CarrierStore(svc.pool, svc.redis, svc.settings.keyspace).create(
        Carrier("eu", "b-eur"), at=T0, actor="test"
    )
    args = ("routes", "--account", "alice", "--to", "221234567", "--at", T0.isoformat())
    before = await cli(svc, capsys, *args)
    assert before["refused"] == "NO_ROUTE"
    assert before["skipped"] == [{"carrier": "eu", "why": "CURRENCY_MISMATCH"}]

    day = (T0 - timedelta(days=1)).isoformat()
    made = await cli(svc, capsys, "fx", "set", "eur", "PLN", "4,312500", "--effective-at", day,
                     "--by", "ops-anna")  # fmt: skip
    assert (made["rate"], made["replaced"]) == ("4.3125", None)
    table = await mirrored_fx(svc.redis, svc.settings.keyspace)
    assert table.convert(1_000_000, "EUR", "PLN", T0) == 4_312_500
    after = await cli(svc, capsys, *args)
    # 60 s at 0.005 EUR/min = 0.0050 EUR = 0.0215625 PLN, rounded up to the micro-unit
    [route] = after["routes"]
    assert (route["carrier"], route["cost_micro"], route["deck_currency"], route["fx_rate"]) == (
        "eu", 21_563, "EUR", "4.3125",
    )  # fmt: skip
    assert route["margin_micro"] == after["sell"]["cost_micro"] - 21_563
    conv = await cli(svc, capsys, "fx", "convert", "1", "PLN", "EUR", "--at", T0.isoformat())
    assert conv["converted"] == "0.231885"  # 1 / 4.3125 = 0.2318840..., rounded up
    listed = await cli(svc, capsys, "fx", "list", "EUR", "PLN")
    assert [r["rate"] for r in listed] == ["4.3125"]


def test_fx_bad_input_is_one_line_exit_2() -> None:
    env = settings_env(Settings.from_env())
    for argv in (["fx", "set", "EUR", "PLN", "-4", "--effective-at", "2026-12-01T00:00Z"],
                 ["fx", "set", "EUR", "PLN", "4.1", "--effective-at", "2026-12-01T00:00"],
                 ["fx", "set", "EUR", "EURO", "4.1", "--effective-at", "2026-12-01T00:00Z"]):
        done = subprocess.run([sys.executable, "-m", "tollgate.cli", *argv], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


async def test_buy_rerate_uses_the_version_in_force_at_each_start_and_is_idempotent(
    svc: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    v1 = buy("b-up", "4860,Mobile,0,0.1000,60,1,0,*\n")
    await install_deck(svc, v1)
    switch_at = datetime(2026, 11, 15, 0, 0, tzinfo=UTC)
    async with svc.pool.acquire() as conn:
        from rating.deck_store import import_deck

        await import_deck(conn, buy("b-up", "4860,Mobile,0,0.0600,60,1,0,*\n"), "test",
                          effective_at=switch_at)  # fmt: skip
        await conn.execute("update decks set effective_at = $1 where name = 'b-up'"
                           " and version = 1", datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    await CarrierStore(svc.pool, svc.redis, svc.settings.keyspace).create(
        Carrier("up", "b-up"), at=T0, actor="test"
    )
    early, late = datetime(2026, 11, 10, 9, 0, tzinfo=UTC), datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    # both calls were recorded with a wrong buy cost (say, a deck fixed afterwards)
    await store_cdrs(svc.pool, [
        cdr("alice", 1, early, carrier="up", buy_deck="b-up", buy_deck_version=1, buy_cost=1),
        cdr("alice", 2, late, carrier="up", buy_deck="b-up", buy_deck_version=1, buy_cost=1),
        cdr("bob", 3, late, carrier="up", buy_deck="", buy_cost=0),  # no deck was recorded
        cdr("bob", 4, late, cost=90_000),  # the single trunk: no buy side, left alone
    ])  # fmt: skip
    base = ("cdr", "rerate", "--buy", "--period", "2026-11", "--now", T0.isoformat())
    dry = await cli(svc, capsys, *base)
    # 60 s: version 1 (0.10/min) for the call of the 10th, version 2 (0.06) for the 20th
    assert [(ln["call_id"], ln["new"]["version"], ln["new"]["buy_cost"]) for ln in dry["lines"]
            ] == [("call-alice-1", 1, "0.1000"), ("call-alice-2", 2, "0.0600"),
                  ("call-bob-3", 2, "0.0600")]  # fmt: skip
    assert dry["applied"] == 0
    report = await cli(svc, capsys, "report", "margin", "--period", "2026-11")
    assert [c["buy"] for c in report["carriers"]] == ["0.000002"]  # 1 + 1 + 0 micro

    done = await cli(svc, capsys, *base, "--apply", "--by", "ops-anna")
    assert (done["changed"], done["applied"]) == (3, 3)
    report = await cli(svc, capsys, "report", "margin", "--period", "2026-11")
    [up] = report["carriers"]
    assert (up["buy"], up["margin_micro"]) == ("0.2200", 3 * 190_000 - 220_000)
    again = await cli(svc, capsys, *base, "--apply")
    assert (again["changed"], again["applied"], again["lines"]) == (0, 0, [])
    async with svc.pool.acquire() as conn:
        kept = await conn.fetch(
            "select call_id, old_cost, new_cost, new_version from buy_rerate_calls"
            " order by call_id"
        )
        actors = await conn.fetch("select actor, changed from buy_rerates order by id")
    assert [tuple(r) for r in kept] == [("call-alice-1", 1, 100_000, 1),
                                        ("call-alice-2", 1, 60_000, 2),
                                        ("call-bob-3", 0, 60_000, 2)]  # fmt: skip
    assert [tuple(r) for r in actors] == [("ops-anna", 3)]

    # one carrier's calls with a named version (here the old one, for all)
    named = await cli(svc, capsys, "cdr", "rerate", "--carrier", "up", "--deck", "b-up:1",
                      "--period", "2026-11", "--account", "bob")  # fmt: skip
    assert [(ln["call_id"], ln["new"]["buy_cost"]) for ln in named["lines"]] == [
        ("call-bob-3", "0.1000")
    ]
    from core.cliout import CliError

    with pytest.raises(CliError, match="unknown carrier 'nobody'"):
        await cli(svc, capsys, "cdr", "rerate", "--carrier", "nobody", "--period", "2026-11")
    with pytest.raises(CliError, match="--account and --deck"):
        await cli(svc, capsys, "cdr", "rerate", "--period", "2026-11", "--account", "bob")


async def test_a_call_through_a_carrier_in_euro_is_routed_and_its_buy_cost_converted(
    svc: Services, make_account: AccountFactory
) -> None:
    from dataclasses import replace

    from cdr.model import Cdr
    from rating.fx import FxRate
    from rating.fx_store import set_fx
    from rating.ledger import CallRequest, Outcome, Reason

    assert svc.pool is not None
    a = await make_account(balance=50_000_000)
    await install_deck(svc, buy("b-eur", "48,Poland,0,0.0050,60,1,0,*\n", currency="EUR"))
    store = CarrierStore(svc.pool, svc.redis, svc.settings.keyspace)
    now = datetime.now(UTC)
    await store.create(Carrier("eu", "b-eur", trunk="trunk-eu"), at=now, actor="test")
    async with svc.pool.acquire() as conn:
        await set_fx(conn, FxRate("EUR", "PLN", "4.3125", now - timedelta(days=1)), at=now,
                     actor="test")  # fmt: skip
    await store.mirror()
    grant = await svc.ledger.authorize(CallRequest(a.id, "e1", "221234567"))
    assert (grant.reason, grant.routes) == (Reason.OK, ("trunk-eu",))
    out = Outcome(answered=True, billsec=60, ended_at=datetime.now(UTC), disposition="ANSWER",
                  hangup_cause="16")  # fmt: skip
    await svc.ledger.finish(a.id, "e1", replace(out, endpoint="trunk-eu"))
    [(_, entries)] = await svc.redis.xread(
        {svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id)): "0"}
    )
    cdr = Cdr.from_stream({k.decode(): v.decode() for k, v in entries[-1][1].items()})
    # 60 s at 0.005 EUR/min = 0.0050 EUR = 0.0215625 PLN, rounded up
    assert (cdr.carrier, cdr.buy_deck, cdr.currency, cdr.buy_cost) == ("eu", "b-eur", "PLN",
                                                                      21_563)  # fmt: skip
