"""Call identity: a call is its switch, its account and the switch's call id. Call ids collide
in real life (Asterisk's uniqueid is unique per box only), and whatever collides, every debit
in the Redis ledger has exactly one CDR in PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from cdr.writer import CdrWriter, WriterSettings
from rating.deck import Deck
from rating.ledger import CallRequest, Ledger, LedgerError, Outcome
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
SWITCHES = ("test", "pbx-b")  # "test" is the fixture ledger's own switch_host
NUMBERS = ("0601234567", "0221234567", "112", "+441234567890")
Identity = tuple[str, str, str]  # switch, account, call id


def _ledgers(svc: Services) -> dict[str, Ledger]:
    """One ledger per switch on the same Redis, as two `tollgate serve` next to two boxes."""
    other = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        replace(svc.ledger.settings, switch_host=SWITCHES[1]),
    )
    return {SWITCHES[0]: svc.ledger, SWITCHES[1]: other}


async def _sums(svc: Services, accounts: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(cost of each account's CDRs in PostgreSQL, what the Redis ledger debited it)."""
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        rows = await conn.fetch(
            "select account, sum(cost)::bigint as cost from cdrs group by account"
        )
    stored = {a: 0 for a in accounts} | {r["account"]: int(r["cost"]) for r in rows}
    debited = {}
    for a in accounts:
        spent = await svc.redis.hget(svc.settings.keyspace.account(a), "spent")
        debited[a] = int(spent or 0)
    return stored, debited


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_colliding_call_ids_across_accounts_and_switches_each_debit_has_its_cdr(
    svc: Services, retail: Deck, make_account: AccountFactory, seed: int
) -> None:
    rnd = random.Random(seed)
    accounts = [(await make_account(balance=50 * PLN)).id for _ in range(3)]
    ledgers = _ledgers(svc)
    ids = [f"1733000000.{n}" for n in range(4)]  # a small pool: collisions are the rule
    authorized: set[Identity] = set()
    finished: dict[Identity, int] = {}  # cost of each settled call
    states: dict[Identity, str] = {}  # the state its CDR must have
    reserved_at_grant: dict[Identity, int] = {}  # what its authorization reserved
    for _ in range(60):
        switch, account, cid = rnd.choice(SWITCHES), rnd.choice(accounts), rnd.choice(ids)
        ledger, ident = ledgers[switch], (switch, account, cid)
        # a switch asks before it reports; a finish may come alone (emergency, parked) and
        # a late authorize of a settled call moves nothing
        if rnd.random() < 0.5:
            number = rnd.choice(NUMBERS)
            try:
                grant = await ledger.authorize(CallRequest(account, cid, number, "600100200"))
            except LedgerError as exc:
                assert exc.code == "CALL_SETTLED" and ident in finished, (ident, exc)
                continue
            if ident in finished:
                assert grant.replay and grant.reserved == reserved_at_grant.get(ident, 0), ident
                continue
            # a call id seen on another switch or account is a new call, never a replay
            assert grant.replay == (ident in authorized), (ident, grant)
            reserved_at_grant[ident] = grant.reserved
            if grant.allowed:
                authorized.add(ident)
            else:  # refused: its record is final, a later finish of it moves nothing
                finished[ident], states[ident] = 0, "denied"
        else:
            billsec = rnd.choice((0, 7, 61, 300))
            outcome = Outcome(
                billsec > 0,
                billsec,
                datetime.now(UTC),
                "ANSWER" if billsec else "NOANSWER",
                "16",
                dialled=rnd.choice(NUMBERS),
            )
            done = await ledger.finish(account, cid, outcome)
            if ident in finished:
                assert done.status == "DUPLICATE" and done.cost == finished[ident]
            else:
                assert done.status == "FINISHED", (ident, done)
                finished[ident], states[ident] = done.cost, "finished"
                authorized.discard(ident)

    w = CdrWriter(
        svc.redis,
        svc.settings.keyspace,
        svc.settings.pg_dsn,
        WriterSettings(consumer="test-writer"),
        CollectorRegistry(),
    )
    async with w:
        while await w.drain_once():
            pass
    stored, debited = await _sums(svc, accounts)
    assert stored == debited
    assert sum(debited.values()) == sum(finished.values()) > 0
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        assert await conn.fetch("select error, fields from cdr_rejects") == []
        rows = await conn.fetch("select switch, account, call_id, state from cdrs")
    by_call: dict[Identity, list[str]] = defaultdict(list)
    for r in rows:
        by_call[(r["switch"], r["account"], r["call_id"])].append(r["state"])
    # every settled call has exactly one row, in its final state
    for ident, state in states.items():
        assert by_call[ident] == [state], ident
    assert all(len(found) == 1 for found in by_call.values())


async def test_a_call_id_from_another_switch_is_another_call_in_the_ledger(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=50 * PLN)
    ledgers = _ledgers(svc)
    cid = "1733000000.42"
    first = await ledgers["test"].authorize(CallRequest(a.id, cid, "0601234567"))
    second = await ledgers["pbx-b"].authorize(CallRequest(a.id, cid, "0601234567"))
    assert first.allowed and second.allowed and not second.replay
    opened = await svc.ledger.open_calls(a.id)
    assert opened == {f"test/{cid}": first.reserved, f"pbx-b/{cid}": second.reserved}
    # the CLI and panel name a call of another switch explicitly
    call = await svc.ledger.call(a.id, cid, switch="pbx-b")
    assert call["switch"] == "pbx-b" and call["state"] == "open"
    assert [r["switch"] for r in await svc.ledger.running(cid, switch="pbx-b")] == ["pbx-b"]
    done = await svc.ledger.finish(
        a.id, cid, Outcome(True, 30, datetime.now(UTC), "ANSWER"), switch="pbx-b"
    )
    assert done.status == "FINISHED" and done.cost > 0
    assert (await svc.ledger.call(a.id, cid))["state"] == "open"  # this switch's call runs on


async def test_rerating_and_the_listing_tell_apart_calls_sharing_an_id(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    """Two calls of one account with the same call id from two switches are re-rated and
    listed as two calls, each with its own price."""
    from billing.listing import listing
    from billing.rerate import rerate
    from tests.conftest import install_deck
    from tests.integration.test_billing import cheaper_mobile, drain, this_period

    a = await make_account(balance=50 * PLN)
    ledgers = _ledgers(svc)
    cid = "1733000000.7"
    period = await this_period()
    for switch, billsec in (("test", 60), ("pbx-b", 120)):
        ledger = ledgers[switch]
        assert (await ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
        outcome = Outcome(True, billsec, datetime.now(UTC), "ANSWER", "16")
        assert (await ledger.finish(a.id, cid, outcome)).status == "FINISHED"
    await drain(svc)
    v2 = await install_deck(svc, cheaper_mobile(retail))
    now = period.bounds("Europe/Warsaw")[1]
    done = await rerate(svc.accounts, a.id, period, "retail", v2.version, now=now, apply=True)
    assert done.applied
    assert sorted((ln.switch, ln.old_charge, ln.new_charge) for ln in done.lines) == [
        ("pbx-b", 380_000, 200_000),  # 120 s at 0.19 -> 0.10 /min
        ("test", 190_000, 100_000),
    ]
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        shown = await listing(conn, await svc.accounts.get(a.id), period)
    assert sorted((c.cdr.switch, c.charge) for c in shown.calls) == [
        ("pbx-b", 200_000),
        ("test", 100_000),
    ]


async def test_cli_names_a_call_by_its_switch_and_account(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from tollgate.cli import CliError, build_parser

    a = await make_account(balance=50 * PLN)
    b = await make_account(balance=50 * PLN)
    cid = "1733000000.9"

    async def cli(*argv: str) -> dict[str, object]:
        args = build_parser().parse_args(list(argv))
        capsys.readouterr()
        await args.run(svc, args)
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    for account, switch in ((a.id, "test"), (a.id, "pbx-b"), (b.id, "test")):
        grant = await cli("authorize", "--account", account, "--to", "0601234567",
                          "--call-id", cid, "--switch", switch)  # fmt: skip
        assert grant["decision"] == "ALLOW" and "replay" not in grant
    done = await cli("finish", "--account", a.id, "--call-id", cid, "--billsec", "30",
                     "--switch", "pbx-b")  # fmt: skip
    assert done["status"] == "FINISHED"
    assert (await svc.ledger.call(a.id, cid, switch="pbx-b"))["state"] == "finished"
    assert (await svc.ledger.call(a.id, cid))["state"] == "open"  # this host's call runs on
    # two accounts run this call id on this switch: hanging up needs to know whose
    monkeypatch.setenv("TOLLGATE_ARI_URL", "http://127.0.0.1:9/ari")
    monkeypatch.setenv("TOLLGATE_ARI_PASSWORD", "x")
    with pytest.raises(CliError, match="give --account"):
        await cli("calls", "hangup", cid)


async def _to_legacy_layout(svc: Services, account: str, cid: str) -> None:
    """Put a call back where tollgate kept it before calls carried their switch."""
    keys, switch = svc.settings.keyspace, svc.ledger.switch_of()
    ref, legacy = f"{switch}/{cid}", keys.call(account, cid)
    await svc.redis.rename(keys.call(account, cid, switch), legacy)
    held = await svc.redis.hget(keys.open_calls(account), ref)
    if held is not None:
        await svc.redis.hdel(keys.open_calls(account), ref)
        await svc.redis.hset(keys.open_calls(account), cid, held)
    expiry = keys.expiry(keys.tag(account))
    due = await svc.redis.zscore(expiry, f"{account}|{ref}")
    if due is not None:
        await svc.redis.zrem(expiry, f"{account}|{ref}")
        await svc.redis.zadd(expiry, {f"{account}|{cid}": due})


async def test_calls_recorded_before_the_upgrade_are_found_after_it(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    """A call open across the upgrade is finished against its reservation, and a replayed
    finish of a call settled before it is a duplicate: never billed twice."""
    a = await make_account(balance=50 * PLN)
    running = await svc.ledger.authorize(CallRequest(a.id, "old.1", "0601234567"))
    ended = await svc.ledger.authorize(CallRequest(a.id, "old.2", "0601234567"))
    outcome = Outcome(True, 60, datetime.now(UTC), "ANSWER", "16")
    cost = (await svc.ledger.finish(a.id, ended.call_id, outcome)).cost
    for cid in ("old.1", "old.2"):
        await _to_legacy_layout(svc, a.id, cid)
    await svc.redis.delete(svc.settings.keyspace.layout_marker())
    assert await svc.ledger.upgrade_calls() == 2
    assert await svc.ledger.upgrade_calls() == 0  # once
    assert await svc.ledger.open_calls(a.id) == {f"test/{running.call_id}": running.reserved}
    assert [r["call_id"] for r in await svc.ledger.open_sessions()] == ["old.1"]
    again = await svc.ledger.finish(a.id, "old.2", outcome)
    assert (again.status, again.cost) == ("DUPLICATE", cost)
    done = await svc.ledger.finish(a.id, "old.1", outcome)
    assert done.status == "FINISHED" and done.prior_state == "open"
    live = await svc.accounts.live(a.id)
    assert live.reserved == 0 and live.spent == cost + done.cost
