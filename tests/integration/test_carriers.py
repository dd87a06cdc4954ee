"""Carriers against the real PostgreSQL and Redis: the CLI (`tollgate carrier ...`,
`tollgate routes`), the event history, the copy in Redis and its repair, and the routes the
authorization would compute from what Redis holds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.cliout import CliError
from rating.carrier_store import CarrierStore, mirrored_carriers
from rating.carriers import Carrier, CarrierConflict, CarrierError, CarrierNotFound
from rating.deck import Deck, build_deck
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory, install_deck, settings_env
from tollgate.cli import build_parser

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 11:00 in Warsaw (retail 'day' band)
HEAD = "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"


def buy(name: str, csv: str, currency: str = "PLN") -> Deck:
    data = {"name": name, "currency": currency, "rates": "rates.csv", "bands": {}}
    return build_deck(data, (HEAD + csv).encode(), manifest_file="m.toml", rates_file="r.csv")


async def cli(svc: Services, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    args = build_parser().parse_args(argv)
    capsys.readouterr()
    await args.run(svc, args)
    return json.loads(capsys.readouterr().out)


async def _decks(svc: Services) -> None:
    # retail sells Warsaw at 0.09/min per second, mobile at 0.19/min per second
    await install_deck(svc, buy("b-cheap", "4822,Warsaw,0,0.0200,60,1,0,*\n"
                                           "4860,Mobile,0,0.2500,60,1,0,*\n"))  # fmt: skip
    await install_deck(svc, buy("b-mid", "48,Poland,0,0.0400,60,1,0,*\n"))


async def test_carrier_cli_history_and_redis_copy(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_account(id="alice")
    await _decks(svc)
    made = await cli(
        svc,
        capsys,
        "carrier",
        "create",
        "cheap",
        "--deck",
        "b-cheap",
        "--trunk",
        "trunk-cheap",
        "--max-calls",
        "2",
        "--now",
        T0.isoformat(),
    )
    assert (made["endpoint"], made["max_calls"], made["priority"]) == ("trunk-cheap", 2, 100)
    await cli(svc, capsys, "carrier", "create", "mid", "--deck", "b-mid", "--priority", "5")
    assert [c["name"] for c in await cli(svc, capsys, "carrier", "list")] == ["cheap", "mid"]

    routes = await cli(svc, capsys, "routes", "--account", "alice", "--to", "22 123 45 67",
                       "--at", T0.isoformat(), "--seconds", "90")  # fmt: skip
    assert routes["number"] == "+48221234567"
    assert routes["sell"]["cost"] == "0.1350"  # 90 s x 0.09/min, per second
    assert [(r["carrier"], r["cost"], r["endpoint"]) for r in routes["routes"]] == [
        ("cheap", "0.0300", "trunk-cheap"), ("mid", "0.0600", "mid"),
    ]  # fmt: skip
    # mobile: cheap buys at 0.25 > 0.19 sold -> dropped; mid has 48 at 0.04
    mobile = await cli(svc, capsys, "routes", "--account", "alice", "--to", "601234567",
                       "--at", T0.isoformat())  # fmt: skip
    assert [r["carrier"] for r in mobile["routes"]] == ["mid"]
    assert mobile["skipped"] == [{"carrier": "cheap", "why": "UNPROFITABLE"}]

    # the operator allows a loss on alice's mobile calls, and pins mid for Warsaw
    rule = await cli(svc, capsys, "carrier", "rule", "set", "--account", "alice", "--prefix",
                     "+4860", "--allow-loss")  # fmt: skip
    assert rule == {"account": "alice", "prefix": "4860", "pin": [], "exclude": [],
                    "allow_loss": True}  # fmt: skip
    await cli(svc, capsys, "carrier", "rule", "set", "--prefix", "4822", "--pin", "mid")
    lossy = await cli(svc, capsys, "routes", "--account", "alice", "--to", "601234567",
                      "--at", T0.isoformat())  # fmt: skip
    assert [(r["carrier"], r["margin_micro"]) for r in lossy["routes"]] == [
        ("mid", 190_000 - 40_000), ("cheap", 190_000 - 250_000),
    ]  # fmt: skip
    pinned = await cli(svc, capsys, "routes", "--account", "alice", "--to", "221234567",
                       "--at", T0.isoformat())  # fmt: skip
    assert [r["carrier"] for r in pinned["routes"]] == ["mid", "cheap"]
    removed = await cli(svc, capsys, "carrier", "rule", "set", "--account", "alice",
                        "--prefix", "4860")  # fmt: skip
    assert removed["removed"] is True
    assert [r["prefix"] for r in await cli(svc, capsys, "carrier", "rule", "list")] == ["4822"]

    await cli(svc, capsys, "carrier", "disable", "mid", "--by", "ops-anna")
    refused = await cli(svc, capsys, "routes", "--account", "alice", "--to", "601234567")
    assert refused["refused"] == "NO_PROFITABLE_ROUTE" and refused["routes"] == []
    updated = await cli(svc, capsys, "carrier", "update", "cheap", "--priority", "7",
                        "--max-calls", "0")  # fmt: skip
    assert (updated["priority"], updated["max_calls"]) == (7, 0)

    shown = await cli(svc, capsys, "carrier", "show", "mid")
    assert shown["disabled"] is True
    assert [(h["event"], h["actor"]) for h in shown["history"]] == [
        ("created", "operator"), ("disabled", "ops-anna"),
    ]  # fmt: skip

    keys = svc.settings.keyspace
    mirrored = await mirrored_carriers(svc.redis, keys)
    assert mirrored is not None
    assert [(c.name, c.priority, c.disabled) for c in mirrored] == [
        ("cheap", 7, False), ("mid", 5, True),
    ]  # fmt: skip
    await svc.redis.delete(keys.carriers())  # Redis lost its data: sync repairs the copy
    assert await mirrored_carriers(svc.redis, keys) is None
    assert await cli(svc, capsys, "carrier", "sync") == {"mirrored": 2}
    assert [c.name for c in await mirrored_carriers(svc.redis, keys) or []] == ["cheap", "mid"]


async def test_bad_carrier_input_changes_nothing(svc: Services, retail: Deck) -> None:
    assert svc.pool is not None
    store = CarrierStore(svc.pool, svc.redis, svc.settings.keyspace)
    await _decks(svc)
    await store.create(Carrier("cheap", "b-cheap"), at=T0, actor="op")
    cases: list[tuple[Carrier, str]] = [
        (Carrier("cheap", "b-mid"), "name"),  # exists
        (Carrier("new", "nosuchdeck"), "deck"),
        (Carrier("new", "b-mid", trunk="PJSIP/x"), "trunk"),
        (Carrier("new", "b-mid", cps=-1), "cps"),
    ]
    for carrier, field in cases:
        with pytest.raises(CarrierError) as bad:
            await store.create(carrier, at=T0, actor="op")
        assert bad.value.field == field
    with pytest.raises(CarrierConflict):
        await store.create(Carrier("cheap", "b-cheap"), at=T0, actor="op")
    with pytest.raises(CarrierNotFound):
        await store.update("nobody", {"priority": 1}, at=T0, actor="op")
    with pytest.raises(CarrierError) as bad:
        await store.update("cheap", {"deck": "nosuchdeck"}, at=T0, actor="op")
    assert bad.value.field == "deck"
    assert await svc.pool.fetchval("select count(*) from carriers") == 1
    assert await svc.pool.fetchval("select count(*) from carrier_events") == 1
    mirrored = await mirrored_carriers(svc.redis, svc.settings.keyspace)
    assert [(c.name, c.deck) for c in mirrored or []] == [("cheap", "b-cheap")]


def _cli(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**settings_env(settings), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "tollgate.cli", *argv], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


async def test_cli_errors_are_one_line_with_stable_exit_codes(
    svc: Services, make_account: AccountFactory
) -> None:
    await make_account(id="alice")
    await _decks(svc)
    for argv, code, words in [
        (("carrier", "create", "x", "--deck", "nosuchdeck"), 2, "deck: unknown deck"),
        (("carrier", "show", "nobody"), 2, "unknown carrier 'nobody'"),
        (("carrier", "rule", "set", "--account", "nobody", "--allow-loss"), 2, "account:"),
        (("carrier", "rule", "set", "--prefix", "48-22", "--allow-loss"), 2, "prefix:"),
        (("routes", "--account", "alice", "--to", "22x"), 2, ""),
        (("routes", "--account", "alice", "--to", "+33123456789"), 3, "no rate"),
    ]:
        done = _cli(svc.settings, *argv)
        assert done.returncode == code, (argv, done.stderr)
        assert "Traceback" not in done.stderr and words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


async def test_margin_report_per_carrier_destination_and_account(
    svc: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    calls = [
        cdr("alice", 1, at, carrier="up", routes="down,up", cost=190_000, buy_cost=80_000),
        cdr("alice", 2, at, carrier="up", routes="up", cost=190_000, buy_cost=250_000),
        cdr(
            "bob",
            3,
            at,
            carrier="down",
            routes="down",
            cost=90_000,
            buy_cost=20_000,
            prefix="4822",
            rate_name="Poland Warsaw",
        ),
        cdr("bob", 4, at, cost=90_000),  # the single trunk: no buy side, not counted
        cdr("bob", 5, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), carrier="up", buy_cost=1),
    ]
    await store_cdrs(svc.pool, calls)
    report = await cli(svc, capsys, "report", "margin", "--period", "2026-11")
    assert [(c["carrier"], c["calls"], c["margin"]) for c in report["carriers"]] == [
        ("up", 2, "0.0500"), ("down", 1, "0.0700"),
    ]  # fmt: skip
    assert [(d["prefix"], d["margin_micro"]) for d in report["destinations"]] == [
        ("4860", 50_000), ("4822", 70_000),
    ]  # fmt: skip
    assert [(a["account"], a["sell"], a["buy"]) for a in report["accounts"]] == [
        ("alice", "0.3800", "0.3300"), ("bob", "0.0900", "0.0200"),
    ]  # fmt: skip
    with pytest.raises(CliError, match="YYYY-MM"):
        await cli(svc, capsys, "report", "margin", "--period", "2026-13")


async def test_carrier_quality_report(svc: Services, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    await store_cdrs(svc.pool, [
        # attempt times (start ms:pdd ms): the failed attempt's and the used one's
        cdr("alice", 1, at, routes="down,up", carrier="up", attempts="down:503:1000:150;",
            carrier_timing="1200:900"),
        cdr("alice", 2, at, routes="up", carrier="up", billsec=30, carrier_timing="5000:2100"),
        cdr("bob", 3, at, routes="down", carrier="down", carrier_timing="7000:"),  # no ringing
        # from before attempt times: no PDD
        cdr("bob", 4, at, routes="down,up", carrier="up", attempts="down:503;", answered=False,
            billsec=0, disposition="NOANSWER"),
        cdr("bob", 5, at),  # the single trunk: not a carrier's
    ])  # fmt: skip
    report = await cli(svc, capsys, "report", "carriers", "--period", "2026-11")
    assert report["carriers"] == [
        {"carrier": "down", "attempts": 3, "answered": 1, "asr_percent": 33.3, "acd_s": 60.0,
         "failure_codes": {"503": 2}, "pdd_attempts": 1, "pdd_avg_ms": 150, "pdd_p50_ms": 150,
         "pdd_p95_ms": 150},
        {"carrier": "up", "attempts": 3, "answered": 2, "asr_percent": 66.7, "acd_s": 45.0,
         "failure_codes": {}, "pdd_attempts": 2, "pdd_avg_ms": 1500, "pdd_p50_ms": 900,
         "pdd_p95_ms": 2100},
    ]  # fmt: skip


async def test_an_unanswered_last_attempt_counts_once(
    svc: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dialplan records a carrier that failed or did not answer among the failed
    attempts and names it as the carrier used too: one attempt, once in ASR and PDD."""
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    lost = {"answered": False, "billsec": 0, "answered_at": None}
    await store_cdrs(svc.pool, [
        # both carriers failed: "up", the last, is in attempts and is the carrier used
        cdr("alice", 1, at, routes="down,up", carrier="up", disposition="CONGESTION",
            attempts="down:503:1000:150;up:503:1200:300;", carrier_timing="1200:300", **lost),
        # the only carrier did not answer (480 from it)
        cdr("alice", 2, at, routes="up", carrier="up", disposition="NOANSWER",
            attempts="up:480:5000:800;", carrier_timing="5000:800", **lost),
        # the caller gave up while "up" rang: that attempt is recorded nowhere else
        cdr("bob", 3, at, routes="up", carrier="up", disposition="CANCEL",
            carrier_timing="9000:400", **lost),
        # answered on "up" after "down" failed
        cdr("bob", 4, at, routes="down,up", carrier="up", attempts="down:503:1000:150;",
            carrier_timing="2000:200"),
    ])  # fmt: skip
    report = await cli(svc, capsys, "report", "carriers", "--period", "2026-11")
    assert report["carriers"] == [
        {"carrier": "down", "attempts": 2, "answered": 0, "asr_percent": 0.0, "acd_s": None,
         "failure_codes": {"503": 2}, "pdd_attempts": 2, "pdd_avg_ms": 150, "pdd_p50_ms": 150,
         "pdd_p95_ms": 150},
        {"carrier": "up", "attempts": 4, "answered": 1, "asr_percent": 25.0, "acd_s": 60.0,
         "failure_codes": {"480": 1, "503": 1}, "pdd_attempts": 4, "pdd_avg_ms": 425,
         "pdd_p50_ms": 300, "pdd_p95_ms": 800},
    ]  # fmt: skip


async def test_carrier_reconciliation_against_its_cdr_file(
    svc: Services, retail: Deck, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from tests.panel import cdr, store_cdrs

    assert svc.pool is not None
    await CarrierStore(svc.pool, svc.redis, svc.settings.keyspace).create(
        Carrier("up", "retail"), at=T0, actor="test"
    )
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # answered 5 s later (10:00:05 Warsaw)
    await store_cdrs(svc.pool, [
        cdr("alice", 1, at, carrier="up", buy_cost=40_000),
        cdr("alice", 2, at + timedelta(hours=1), carrier="up", buy_cost=40_000),
        cdr("bob", 3, at + timedelta(hours=2), carrier="up", e164="+48221234567"),
        cdr("bob", 4, at, carrier="other"),  # another carrier's call
    ])  # fmt: skip
    theirs = tmp_path / "up.csv"
    theirs.write_text(
        "Called,Date,Dur,Amount\n"
        "0048601234567,2026-11-10T10:00:07,60,0.0400\n"  # call 1, as we have it
        "601234567,2026-11-10T11:00:05,75,0.0500\n"  # call 2: longer and dearer there
        "+48229999999,2026-11-10T12:00:00,30,0.0100\n"  # not ours
    )
    columns = "number=Called,start=Date,seconds=Dur,cost=Amount"
    found = await cli(svc, capsys, "carrier", "reconcile", "up", "--csv", str(theirs),
                      "--period", "2026-11", "--columns", columns)  # fmt: skip
    assert (found["theirs"], found["ours"], found["matched"]) == (3, 3, 2)
    assert [(d["kind"], d.get("line"), d.get("call_id")) for d in found["differences"]] == [
        ("duration", 3, "call-alice-2"), ("cost", 3, "call-alice-2"),
        ("missing_in_tollgate", 4, None), ("missing_at_carrier", None, "call-bob-3"),
    ]  # fmt: skip
    theirs.write_text("Called,Date,Dur\n601234567,2026-11-10T10:00:07,6o\n")
    with pytest.raises(CliError, match=r"up.csv:2: Dur: whole seconds"):
        await cli(svc, capsys, "carrier", "reconcile", "up", "--csv", str(theirs),
                  "--period", "2026-11", "--columns", columns)  # fmt: skip


async def test_routes_price_with_the_buy_deck_in_effect_at_the_instant(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from rating.deck_store import import_deck, publish_stored

    assert svc.pool is not None
    await make_account(id="alice")
    await _decks(svc)
    await cli(svc, capsys, "carrier", "create", "mid", "--deck", "b-mid")
    # the first version is in effect from its import (now), the new prices from `change`
    soon = datetime.now(UTC) + timedelta(days=1)
    change = soon + timedelta(days=30)
    async with svc.pool.acquire() as conn:
        dearer = buy("b-mid", "48,Poland,0,0.5000,60,1,0,*\n")
        stored, _ = await import_deck(conn, dearer, "test", effective_at=change)
        await publish_stored(conn, svc.redis, svc.settings.keyspace, stored.name, stored.version)
    before = await cli(svc, capsys, "routes", "--account", "alice", "--to", "221234567",
                       "--at", soon.isoformat())  # fmt: skip
    assert [(r["carrier"], r["cost"]) for r in before["routes"]] == [("mid", "0.0400")]
    after = await cli(svc, capsys, "routes", "--account", "alice", "--to", "221234567",
                      "--at", (change + timedelta(hours=1)).isoformat())  # fmt: skip
    assert after["refused"] == "NO_PROFITABLE_ROUTE"
    assert after["skipped"] == [{"carrier": "mid", "why": "UNPROFITABLE"}]
