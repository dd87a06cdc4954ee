"""Redis's key layout at scale: the hash-tag count recorded and enforced, moving to another
count with `tollgate redis retag`, and settled call records kept hours, not days."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rating.keys import Keyspace
from rating.ledger import CallRequest, Outcome
from rating.retag import LayoutMismatch, RetagRefused, ensure_layout, retag
from runtime.services import Services, services
from runtime.settings import Settings
from tests.conftest import AccountFactory, settings_env

PLN = 1_000_000


async def test_a_process_with_another_tag_count_refuses_to_start(
    svc: Services, settings: Settings
) -> None:
    shards = settings.keyspace.shards
    assert await svc.redis.get(settings.keyspace.layout_shards()) == str(shards).encode()
    other = replace(settings, keyspace=Keyspace(settings.keyspace.prefix, shards * 2))
    with pytest.raises(LayoutMismatch) as err:
        async with services(other, pg=False):
            pass
    assert f"TOLLGATE_SHARDS={shards * 2}" in str(err.value)
    assert f"--from {shards}" in str(err.value)


async def test_a_redis_of_an_older_version_is_not_taken_for_a_fresh_one(svc: Services) -> None:
    keys = Keyspace(f"{svc.settings.keyspace.prefix}old", 256)
    await svc.redis.set(keys.layout_marker(), "switch")  # every older serve wrote this
    with pytest.raises(LayoutMismatch) as err:
        await ensure_layout(svc.redis, keys)
    assert "--from 16" in str(err.value)
    await ensure_layout(svc.redis, Keyspace(keys.prefix, 16))  # what it was written with
    assert await svc.redis.get(keys.layout_shards()) == b"16"


async def _call(svc: Services, account: str, cid: str, billsec: int = 30) -> None:
    await svc.ledger.authorize(CallRequest(account, cid, "0601234567"))
    await svc.ledger.finish(account, cid, Outcome(True, billsec, datetime.now(UTC), "ANSWER", "16"))


async def test_settled_call_records_are_kept_hours(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    await _call(svc, a.id, "ttl-1")
    key = svc.settings.keyspace.call(a.id, "ttl-1", svc.settings.ledger.switch_host)
    assert 0 < await svc.redis.ttl(key) <= 6 * 3600


async def test_retag_moves_every_account_and_keeps_replays_and_balances(
    svc: Services, settings: Settings, make_account: AccountFactory
) -> None:
    accounts = [await make_account(balance=PLN, id=f"rt-{n}") for n in range(12)]
    for a in accounts:
        await _call(svc, a.id, f"c-{a.id}")
    before = {a.id: (await svc.accounts.live(a.id)).as_dict() for a in accounts}
    old = settings.keyspace
    new = Keyspace(old.prefix, old.shards * 8)

    # calls still open: refused, nothing moved
    await svc.ledger.authorize(CallRequest(accounts[0].id, "still-open", "0601234567"))
    with pytest.raises(RetagRefused, match="calls are open"):
        await retag(svc.redis, old, new)
    await svc.ledger.finish(
        accounts[0].id, "still-open", Outcome(False, 0, datetime.now(UTC), "NO ANSWER", "19")
    )
    # CDRs nobody has read yet: refused too (the streams are per tag)
    for tag in old.tags():
        await svc.redis.xgroup_create(old.cdr_stream(tag), "writer", id="0", mkstream=True)
    with pytest.raises(RetagRefused, match="not acknowledged"):
        await retag(svc.redis, old, new)
    for tag in old.tags():  # the writer drains them
        entries = await svc.redis.xreadgroup("writer", "w", {old.cdr_stream(tag): ">"})
        for _, items in entries:
            await svc.redis.xack(old.cdr_stream(tag), "writer", *[i for i, _ in items])

    done = await retag(svc.redis, old, new)
    assert done.moved > 0 and done.kept < done.moved
    # interrupted or not, running it again moves nothing
    again = await retag(svc.redis, old, new)
    assert again.moved == 0 and again.kept == done.moved + done.kept

    moved = replace(settings, keyspace=new)
    async with services(moved) as s:
        for a in accounts:
            after = (await s.accounts.live(a.id)).as_dict()
            assert after == before[a.id] or a.id == accounts[0].id
            # the settled call is still known: its replay is a duplicate, not a new call
            dup = await s.ledger.finish(
                a.id, f"c-{a.id}", Outcome(True, 30, datetime.now(UTC), "ANSWER", "16")
            )
            assert dup.status == "DUPLICATE"
            grant = await s.ledger.authorize(CallRequest(a.id, f"n-{a.id}", "0601234567"))
            assert grant.decision.value == "ALLOW"


def test_retag_command_names_the_counts(settings: Settings, svc: Services) -> None:
    shards = settings.keyspace.shards
    env = {**settings_env(settings), "TOLLGATE_SHARDS": str(2 * shards), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "redis", "retag", "--from", str(shards)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f'"from": {shards}' in out.stdout and f'"to": {2 * shards}' in out.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "account", "list"],
        capture_output=True,
        text=True,
        env={**env, "TOLLGATE_SHARDS": str(shards)},
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 2 and f"TOLLGATE_SHARDS={shards}" in wrong.stderr
    assert "Traceback" not in wrong.stderr
