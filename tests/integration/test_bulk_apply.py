"""Ledger entries applied in Redis for a whole batch in one script call (apply_entries):
each entry exactly once and in sequence, as apply_entry applies one; an account Redis
refuses (a gap, no key, a key of another type) fails alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing import bulk_entries
from billing.bulk_entries import apply_in_redis
from rating.account_store import LedgerEntry
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
NOW = datetime(2026, 11, 2, 6, tzinfo=UTC)


async def _seq(svc: Services, account: str) -> int:
    return int(await svc.redis.hget(svc.ledger.keys.account(account), "ledger_seq") or 0)


def _entry(account: str, seq: int, amount: int) -> LedgerEntry:
    return LedgerEntry(account, seq, "adjustment", amount, f"r-{seq}", "", NOW)


@pytest.mark.parametrize("per_call", [1, 2, bulk_entries.SCRIPT_ENTRIES])
async def test_a_batch_applies_each_entry_once_in_sequence(
    svc: Services, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch, per_call: int
) -> None:
    # an account's entries split over script calls (of one pipeline) or in one
    monkeypatch.setattr(bulk_entries, "SCRIPT_ENTRIES", per_call)
    a = await make_account(balance=PLN)
    b = await make_account(balance=PLN)
    gap = await make_account(balance=PLN)
    sa, sb, sg = [await _seq(svc, x.id) for x in (a, b, gap)]
    entries = [
        _entry(a.id, sa + 1, -PLN // 4),
        _entry(a.id, sa + 2, -PLN // 4),  # an account's second entry, in the same call
        _entry(b.id, sb + 1, 3 * PLN),
        _entry(gap.id, sg + 2, 5 * PLN),  # sg + 1 missing: refused
    ]
    failed = await apply_in_redis(svc.accounts, entries)
    assert set(failed) == {gap.id}
    assert "GAP" in failed[gap.id]
    assert (await svc.accounts.live(a.id)).balance == PLN // 2
    assert (await svc.accounts.live(b.id)).balance == 4 * PLN
    assert (await svc.accounts.live(gap.id)).balance == PLN
    assert await _seq(svc, a.id) == sa + 2
    # again: every entry is a duplicate, nothing moves
    assert set(await apply_in_redis(svc.accounts, entries)) == {gap.id}
    assert (await svc.accounts.live(a.id)).balance == PLN // 2
    assert (await svc.accounts.live(b.id)).balance == 4 * PLN


async def test_a_key_redis_refuses_fails_its_account_alone(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    broken = await make_account(balance=PLN)
    sa = await _seq(svc, a.id)
    key = svc.ledger.keys.account(broken.id)
    await svc.redis.delete(key)
    await svc.redis.set(key, "not a hash")  # the script errors on this key
    entries = [_entry(broken.id, 1, PLN), _entry(a.id, sa + 1, PLN)]
    failed = await apply_in_redis(svc.accounts, entries)
    assert set(failed) == {broken.id}
    assert (await svc.accounts.live(a.id)).balance == 2 * PLN
    missing = await make_account(balance=PLN)
    await svc.redis.delete(svc.ledger.keys.account(missing.id))
    failed = await apply_in_redis(svc.accounts, [_entry(missing.id, 1, PLN)])
    assert "NO_ACCOUNT" in failed[missing.id]
