"""`tollgate account import FILE.csv`: bulk onboarding, idempotent, errors by line."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rating.account_import import ImportErrors, import_accounts
from rating.accounts import AccountKind
from rating.deck import Deck
from rating.ledger import CallRequest
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import settings_env

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HEADER = "id,kind,deck,credit_limit,max_calls,cps,daily_cap,allow_premium,blocked_prefixes\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


async def test_accounts_are_created_in_postgresql_and_redis_and_can_call(
    svc: Services, retail: Deck, tmp_path: Path
) -> None:
    rows = "".join(f"bulk-{n},prepaid,retail,,4,2,50.00,no,4870 4890\n" for n in range(300))
    rows += "biz-1,postpaid,retail,1000.50,0,0,,yes,\n"
    assert svc.pool is not None
    done = await import_accounts(
        svc.pool, svc.redis, svc.settings.keyspace, write(tmp_path, rows), AT
    )
    assert (done.created, done.existing, done.mirrored) == (301, 0, 301)

    a = await svc.accounts.get("bulk-7")
    assert (a.deck, a.max_calls, a.cps, a.daily_cap) == ("retail", 4, 2, 50_000_000)
    assert a.blocked_prefixes == ("4870", "4890") and not a.allow_premium
    b = await svc.accounts.get("biz-1")
    assert (b.kind, b.credit_limit, b.allow_premium) == (AccountKind.POSTPAID, 1_000_500_000, True)
    events = await svc.pool.fetchval(
        "select count(*) from account_events where event = 'created' and at = $1", AT
    )
    assert events == 301
    live = (await svc.accounts.live("biz-1")).as_dict()
    assert live["available"] == 1_000_500_000 and live["balance"] == 0
    grant = await svc.ledger.authorize(CallRequest("biz-1", "imp-1", "0601234567"))
    assert grant.decision.value == "ALLOW"
    refused = await svc.ledger.authorize(CallRequest("bulk-1", "imp-2", "0601234567"))
    assert refused.reason == "INSUFFICIENT_CREDIT"  # prepaid, nothing topped up yet


async def test_importing_again_changes_nothing_and_completes_an_interrupted_run(
    svc: Services, retail: Deck, tmp_path: Path
) -> None:
    path = write(tmp_path, "".join(f"again-{n},prepaid,retail,,,,,,\n" for n in range(50)))
    assert svc.pool is not None
    keys = svc.settings.keyspace
    first = await import_accounts(svc.pool, svc.redis, keys, path, AT)
    assert first.created == 50
    await svc.accounts.update("again-3", max_calls=9)  # changed since: not overwritten
    await svc.redis.delete(keys.account("again-4"))  # Redis lost it (interrupted run)
    second = await import_accounts(svc.pool, svc.redis, keys, path, AT)
    assert (second.created, second.existing, second.mirrored) == (0, 50, 1)
    assert (await svc.accounts.get("again-3")).max_calls == 9
    assert await svc.redis.hget(keys.account("again-4"), "deck") == b"retail"
    count = await svc.pool.fetchval("select count(*) from accounts where id like 'again-%'")
    assert count == 50


async def test_errors_name_file_and_line_and_nothing_is_written(
    svc: Services, retail: Deck, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "ok-1,prepaid,retail,,,,,,\n"
        "bad id,prepaid,retail,,,,,,\n"
        "ok-2,prepaid,retail,12.1234567,,,,,\n"
        "ok-3,weird,retail,,,,,,\n"
        "ok-1,prepaid,retail,,,,,,\n"
        "ok-4,prepaid,retail,,-1,,,,\n"
        "ok-5,prepaid,retail,,,,,maybe,\n"
        "ok-6,prepaid\n",
    )
    assert svc.pool is not None
    with pytest.raises(ImportErrors) as err:
        await import_accounts(svc.pool, svc.redis, svc.settings.keyspace, path, AT)
    text = str(err.value)
    for line, what in (
        (3, "id:"),
        (4, "credit_limit"),
        (5, "kind: one of prepaid, postpaid"),
        (6, "id 'ok-1' repeats line 2"),
        (7, "max_calls"),
        (8, "allow_premium: yes or no"),
        (9, "2 fields, the header has 9"),
    ):
        assert f"accounts.csv:{line}: {what}" in text, (line, text)
    assert await svc.pool.fetchval("select count(*) from accounts") == 0

    unknown = write(tmp_path, "x-1,prepaid,nosuch,,,,,,\nx-2,prepaid,retail,,,,,,\n")
    with pytest.raises(ImportErrors, match=r"accounts.csv:2: deck: unknown deck 'nosuch'"):
        await import_accounts(svc.pool, svc.redis, svc.settings.keyspace, unknown, AT)
    bad_header = write(tmp_path, "y-1,1\n", header="id,colour\n")
    with pytest.raises(ImportErrors, match=r"accounts.csv:1: unknown column 'colour'"):
        await import_accounts(svc.pool, svc.redis, svc.settings.keyspace, bad_header, AT)
    assert await svc.pool.fetchval("select count(*) from accounts") == 0


def test_cli_imports_and_exits_2_on_a_bad_file(
    settings: Settings, svc: Services, retail: Deck, tmp_path: Path
) -> None:
    env = {**settings_env(settings), "PATH": "/usr/bin:/bin"}

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tollgate.cli", "account", "import", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    ok = run(write(tmp_path, "cli-1,prepaid,retail,,,,,,\n"))
    assert ok.returncode == 0 and '"created": 1' in ok.stdout, ok.stderr
    bad = run(write(tmp_path, "cli-2,prepaid,retail,x,,,,,\n"))
    assert bad.returncode == 2 and "accounts.csv:2: credit_limit" in bad.stderr
    assert "Traceback" not in bad.stderr
