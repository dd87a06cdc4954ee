"""Keeping Redis in step with PostgreSQL, account by account.

PostgreSQL is written first (settings, ledger entries), Redis second; a Redis failure in
between leaves an account behind: settings not mirrored, entries not applied, or the whole
account missing (Redis lost its data). `repair_account` finds which and mends it — entries
applied in sequence exactly once, a lost account rebuilt as its entries minus the costs of
its CDRs — so the next `serve` or `bill run` repairs what an operator may not know about."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rating.account_store import AccountStore
from rating.accounts import Account
from rating.plan_store import PlanStore


class Drift(StrEnum):
    REBUILT = "rebuilt"  # the account was missing from Redis
    ENTRIES = "entries"  # ledger entries PostgreSQL holds were not applied
    SETTINGS = "settings"  # the mirrored settings differed


@dataclass(frozen=True, slots=True)
class Repair:
    account: str
    drift: Drift
    entries: int  # ledger entries applied

    def as_dict(self) -> dict[str, str | int]:
        return {"account": self.account, "drift": self.drift.value, "entries": self.entries}


DRIFT_MONEY = ("balance", "ledger_seq")  # the first fields `drift_in` reads, in order


def drift_fields(account: Account) -> list[str]:
    """The hash fields `drift_in` compares, in its order."""
    return [*DRIFT_MONEY, *account.redis_fields()]


async def drift_of(store: AccountStore, account: Account, pg_seq: int) -> Drift | None:
    """How Redis differs from PostgreSQL for `account` (whose last entry is `pg_seq`)."""
    values = await store.ledger.redis.hmget(
        store.ledger.keys.account(account.id), drift_fields(account)
    )
    return drift_in(values, account, pg_seq)


def drift_in(
    values: list[Any], account: Account, pg_seq: int, wanted: dict[str, str] | None = None
) -> Drift | None:
    """`drift_of` from the values of `drift_fields` as Redis returned them (`wanted`: the
    account's `redis_fields`, when the caller already has them: a bill run reads thousands)."""
    if wanted is None:
        wanted = account.redis_fields()
    if values[0] is None:
        return Drift.REBUILT
    if int(values[1] or 0) != pg_seq:
        return Drift.ENTRIES
    have = [v.decode() if isinstance(v, bytes) else v for v in values[2:]]
    if have != list(wanted.values()):
        return Drift.SETTINGS
    return None


async def repair_account(store: AccountStore, account: Account, pg_seq: int) -> Repair | None:
    """Mend `account` in Redis if it drifted; None when it had not."""
    drift = await drift_of(store, account, pg_seq)
    if drift is None:
        return None
    applied = await store.sync(account.id)
    if drift is Drift.REBUILT:
        spent = await store.pool.fetchval(
            "select coalesce(sum(cost), 0) from cdrs where account = $1", account.id
        )
        await store.ledger.money(
            "restore_spent", [store.ledger.keys.account(account.id)], [int(spent)]
        )
        # its plan's bundles and what its calls took from them, as for the money
        plans = PlanStore(store)
        await plans.mirror(account.id)
        await plans.restore_usage(account.id)
    return Repair(account.id, drift, applied)


async def ledger_seqs(store: AccountStore) -> dict[str, int]:
    """The last ledger entry of every account, as PostgreSQL has it."""
    rows = await store.pool.fetch("select id, ledger_seq from accounts")
    return {r["id"]: int(r["ledger_seq"]) for r in rows}


async def repair_all(store: AccountStore) -> list[Repair]:
    seqs = await ledger_seqs(store)
    out = []
    for account in await store.all():
        fixed = await repair_account(store, account, seqs.get(account.id, 0))
        if fixed is not None:
            out.append(fixed)
    # plans are mirrored apart from the settings: rewritten for every account that has one
    await PlanStore(store).mirror_all()
    return out
