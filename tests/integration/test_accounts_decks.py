"""Accounts and decks in PostgreSQL, mirrored to Redis; bad input leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rating.account_store import ReferenceConflict
from rating.accounts import Account, AccountError, AccountKind
from rating.deck import Deck, DeckError, load_deck
from rating.deck_store import list_decks, load_deck_version
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import RETAIL, AccountFactory, install_deck, settings_env


async def test_topups_are_ledger_entries_applied_once(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    e1, created = await svc.accounts.add_entry(
        a.id, "topup", 5_000_000, reference="pay-1", at=datetime.now(UTC)
    )
    again, created_again = await svc.accounts.add_entry(
        a.id, "topup", 5_000_000, reference="pay-1", at=datetime.now(UTC)
    )
    assert created and not created_again and again.seq == e1.seq
    await svc.accounts.add_entry(
        a.id, "adjustment", -1_000_000, note="goodwill reversal", at=datetime.now(UTC)
    )
    live = await svc.accounts.live(a.id)
    assert live.balance == 4_000_000 == live.entries_total
    assert [e.seq for e in await svc.accounts.entries(a.id)] == [2, 1]


async def test_redis_catches_up_from_postgresql(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=3_000_000)
    await svc.redis.delete(svc.settings.keyspace.account(a.id))  # Redis lost the account
    assert await svc.accounts.sync(a.id) == 1
    live = await svc.accounts.live(a.id)
    assert live.balance == 3_000_000
    assert await svc.accounts.sync(a.id) == 0  # nothing applied twice


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "bad id!"}, "id"),
        ({"id": "x", "country": "XX"}, "country"),
        ({"id": "x", "timezone": "Nowhere/City"}, "timezone"),
        ({"id": "x", "max_calls": -1}, "max_calls"),
        ({"id": "x", "blocked_prefixes": ("48a",)}, "blocked_prefixes"),
        ({"id": "x", "credit_limit": 5}, "credit_limit"),  # prepaid has no credit
    ],
)
async def test_bad_account_fields_are_named_and_nothing_is_written(
    svc: Services, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(AccountError) as err:
        await svc.accounts.create(Account(**fields))  # type: ignore[arg-type]
    assert err.value.field == field
    assert await svc.accounts.all() == []


async def test_topup_to_unknown_or_closed_account(
    svc: Services, make_account: AccountFactory
) -> None:
    from rating.accounts import AccountNotFound, AccountStatus

    with pytest.raises(AccountNotFound):
        await svc.accounts.add_entry("ghost", "topup", 1, at=datetime.now(UTC))
    a = await make_account(kind=AccountKind.POSTPAID, credit_limit=1)
    await svc.accounts.set_status(a.id, AccountStatus.CLOSED)
    with pytest.raises(AccountError):
        await svc.accounts.add_entry(a.id, "topup", 1, at=datetime.now(UTC))


async def test_deck_versions_switch_atomically(svc: Services, retail: Deck) -> None:
    assert retail.version == 1
    same = await install_deck(svc, load_deck(RETAIL))
    assert same.version == 1  # identical content: no new version
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        decks = await list_decks(conn)
        stored = await load_deck_version(conn, "retail")
    assert [(d["version"], d["current"]) for d in decks] == [(1, True)]
    assert stored.rows == retail.rows and stored.sha256 == retail.sha256


def test_a_bad_deck_import_writes_nothing(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "deck.toml").write_text('name = "broken"\ncurrency = "PLN"\nrates = "r.csv"\n')
    (tmp_path / "r.csv").write_text(
        "prefix,name,connect_fee,rate,rate_unit_s,increment_s,from_s,band\n"
        "48,ok,0,0.1,60,60,0,*\n49,bad,0,-1,60,60,0,*\n"
    )
    with pytest.raises(DeckError):
        load_deck(tmp_path / "deck.toml")
    env = {**settings_env(settings), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "deck", "import", str(tmp_path / "deck.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and "r.csv:3" in out.stderr and "Traceback" not in out.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "deck", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert '"broken"' not in listing.stdout


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "x", "deck": "nosuchdeck"}, "deck"),
        ({"id": "x", "deck": "../../etc"}, "deck"),
        ({"id": "x", "deck": "retail", "currency": "EUR"}, "currency"),  # retail is PLN
        ({"id": "x", "currency": "XYZ"}, "currency"),
        ({"id": "x", "currency": "<B>"}, "currency"),
        ({"id": "x", "currency": "=1A"}, "currency"),
    ],
)
async def test_accounts_need_a_real_deck_in_their_currency(
    svc: Services, retail: Deck, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(AccountError) as err:
        await svc.accounts.create(Account(**fields))  # type: ignore[arg-type]
    assert err.value.field == field
    assert await svc.accounts.all() == []


async def test_an_account_cannot_move_to_an_unknown_deck(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    with pytest.raises(AccountError) as err:
        await svc.accounts.update(a.id, deck="nosuchdeck")
    assert err.value.field == "deck"
    assert (await svc.accounts.get(a.id)).deck == "retail"


async def test_a_reference_with_another_amount_or_kind_is_a_conflict(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    now = datetime.now(UTC)
    first, _ = await svc.accounts.add_entry(a.id, "topup", 5_000_000, reference="pay-9", at=now)
    for kind, amount in (("topup", 6_000_000), ("payment", 5_000_000)):
        with pytest.raises(ReferenceConflict) as err:
            await svc.accounts.add_entry(a.id, kind, amount, reference="pay-9", at=now)
        assert err.value.existing.seq == first.seq
    again, created = await svc.accounts.add_entry(
        a.id, "topup", 5_000_000, reference="pay-9", at=now
    )
    assert not created and again.seq == first.seq
    assert (await svc.accounts.live(a.id)).balance == 5_000_000


def _cli(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**settings_env(settings), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_cli_refuses_wrong_inputs_with_exit_2(
    settings: Settings, make_account: AccountFactory
) -> None:
    a = await make_account()
    cases = [
        ("account", "create", "bob", "--deck", "nosuchdeck"),
        ("account", "create", "bob", "--deck", "retail", "--currency", "XYZ"),
        ("account", "create", "bob", "--deck", "retail", "--max-calls", "1_000"),
        ("account", "topup", a.id, "1e3"),
        ("account", "topup", a.id, "1_000"),
        ("account", "topup", a.id, "\u0661\u0662"),
        ("account", "topup", a.id, "1e300000"),
        ("account", "topup", a.id, "1e999999"),
    ]
    for argv in cases:
        out = _cli(settings, *argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert "Traceback" not in out.stderr
    assert _cli(settings, "account", "topup", a.id, "5", "--reference", "r1").returncode == 0
    assert _cli(settings, "account", "topup", a.id, "5", "--reference", "r1").returncode == 0
    conflict = _cli(settings, "account", "topup", a.id, "7", "--reference", "r1")
    assert conflict.returncode == 2 and "r1" in conflict.stderr


async def test_an_unchanged_deck_is_recognised_by_its_hash_without_parsing(
    svc: Services,
    retail: Deck,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse
    import json

    from tollgate import commands

    def no_parsing(*args: object, **kwargs: object) -> Deck:
        raise AssertionError("an unchanged deck was parsed")

    monkeypatch.setattr(commands, "import_stream", no_parsing)
    await svc.redis.delete(svc.settings.keyspace.deck_current("retail"))  # Redis lost it
    await commands.cmd_deck_import(svc, argparse.Namespace(path=str(RETAIL)))
    out = json.loads(capsys.readouterr().out)
    assert (out["version"], out["created"], out["rows"]) == (
        retail.version,
        False,
        len(retail.rows),
    )
    assert out["prefixes"] == len(retail.prefixes)
    keys = svc.settings.keyspace
    assert await svc.redis.get(keys.deck_current("retail")) == str(retail.version).encode()


async def test_start_up_puts_a_lost_deck_back_from_its_compiled_form(
    svc: Services, retail: Deck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis lost the deck: start-up copies the compiled form kept with the version in
    PostgreSQL instead of rebuilding the deck row by row (its time does not grow with the
    deck's rows), and what Redis then serves rates like the imported deck."""
    from rating import deck_store

    def no_rebuilding(*args: object, **kwargs: object) -> Deck:
        raise AssertionError("the deck was rebuilt from its rates")

    keys = svc.settings.keyspace
    await svc.redis.delete(keys.deck_current("retail"), keys.deck_version("retail", 1))
    monkeypatch.setattr(deck_store, "load_deck_version", no_rebuilding)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        assert await deck_store.publish_all(conn, svc.redis, keys) == 1
        assert await deck_store.publish_all(conn, svc.redis, keys) == 0  # already there
    served = await deck_store.fetch_from_redis(svc.redis, keys, "retail", 1)
    assert served is not None and served.version == retail.version
    assert served.rows == retail.rows
    assert served.lookup("48601234567") == retail.lookup("48601234567")
