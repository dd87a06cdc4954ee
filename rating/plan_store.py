"""Plans and their assignment to accounts in PostgreSQL (the truth), mirrored into each
account's hash in Redis (field `bundles`, see rating/bundles.py) after every change."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound
from rating.bundles import encode, period_of, pro_rata, usage_fields
from rating.plans import Allowance, Assignment, Plan, PlanConflict, PlanError, PlanNotFound

CHANGEABLE = frozenset({"fee", "allowances"})


def _allowance(row: asyncpg.Record) -> Allowance:
    return Allowance(row["seconds"], tuple(row["classes"]), tuple(row["prefixes"]), row["label"])


def _assignment(row: asyncpg.Record) -> Assignment:
    return Assignment(row["id"], row["account"], row["plan"], row["start_at"], row["end_at"])


async def _plan(conn: Conn, name: str, *, lock: bool = False) -> Plan:
    row = await conn.fetchrow(
        "select * from plans where name = $1" + (" for update" if lock else ""), name
    )
    if row is None:
        raise PlanNotFound(name)
    allowances = await conn.fetch(
        "select * from plan_allowances where plan = $1 order by idx", name
    )
    return Plan(
        row["name"],
        row["fee"],
        row["currency"],
        tuple(_allowance(a) for a in allowances),
        row["period"],
        row["disabled_at"],
        row["created_at"],
        row["updated_at"],
    )


async def _store_allowances(conn: Conn, plan: Plan) -> None:
    await conn.execute("delete from plan_allowances where plan = $1", plan.name)
    await conn.executemany(
        "insert into plan_allowances (plan, idx, label, seconds, classes, prefixes)"
        " values ($1, $2, $3, $4, $5, $6)",
        [
            (plan.name, i, a.label, a.seconds, list(a.classes), list(a.prefixes))
            for i, a in enumerate(plan.allowances)
        ],
    )


async def _event(
    conn: Conn, plan: str, account: str | None, event: str, actor: str, detail: Any, at: datetime
) -> None:
    await conn.execute(
        "insert into plan_events (plan, account, event, actor, detail, at)"
        " values ($1, $2, $3, $4, $5, $6)",
        plan,
        account,
        event,
        actor,
        json.dumps(detail, default=str),
        at,
    )


class PlanStore:
    def __init__(self, accounts: AccountStore) -> None:
        self.accounts = accounts
        self.pool = accounts.pool

    # -- the catalogue --------------------------------------------------------------------

    async def create(self, plan: Plan, *, at: datetime, actor: str) -> Plan:
        plan = replace(plan.checked(), created_at=at, updated_at=at, disabled_at=None)
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("select 1 from plans where name = $1", plan.name):
                raise PlanConflict("name", f"plan {plan.name!r} exists already")
            await conn.execute(
                "insert into plans (name, period, fee, currency, created_at, updated_at)"
                " values ($1, $2, $3, $4, $5, $5)",
                plan.name, plan.period, plan.fee, plan.currency, at,
            )  # fmt: skip
            await _store_allowances(conn, plan)
            await _event(conn, plan.name, None, "created", actor, plan.as_dict(), at)
        return plan

    async def get(self, name: str) -> Plan:
        async with self.pool.acquire() as conn:
            return await _plan(conn, name)

    async def all(self) -> list[Plan]:
        async with self.pool.acquire() as conn:
            names = await conn.fetch("select name from plans order by name")
            return [await _plan(conn, r["name"]) for r in names]

    async def update(self, name: str, changes: dict[str, Any], *, at: datetime,
                     actor: str) -> Plan:  # fmt: skip
        """Change the fee or the allowances; accounts on the plan get the new allowances at
        once (usage already counted in the month stays counted)."""
        unknown = set(changes) - CHANGEABLE
        if unknown:
            raise PlanError(sorted(unknown)[0], "cannot be changed")
        async with self.pool.acquire() as conn, conn.transaction():
            before = await _plan(conn, name, lock=True)
            after = replace(before, **changes, updated_at=at).checked()
            await conn.execute(
                "update plans set fee = $2, updated_at = $3 where name = $1", name, after.fee, at
            )
            if after.allowances != before.allowances:
                await _store_allowances(conn, after)
            await _event(conn, name, None, "updated", actor,
                         {k: after.as_dict()[k] for k in changes}, at)  # fmt: skip
            accounts = await conn.fetch(
                "select distinct account from account_plans where plan = $1"
                " and (end_at is null or end_at > $2)",
                name,
                at,
            )
        for r in accounts:
            await self.mirror(r["account"])
        return after

    async def disable(self, name: str, *, at: datetime, actor: str) -> Plan:
        """No new assignments; accounts on the plan keep it until unassigned."""
        async with self.pool.acquire() as conn, conn.transaction():
            plan = await _plan(conn, name, lock=True)
            if plan.disabled:
                return plan
            await conn.execute(
                "update plans set disabled_at = $2, updated_at = $2 where name = $1", name, at
            )
            await _event(conn, name, None, "disabled", actor, {}, at)
            return replace(plan, disabled_at=at, updated_at=at)

    async def history(self, name: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "select account, event, actor, detail, at from plan_events where plan = $1"
            " order by at, id",
            name,
        )
        return [{"account": r["account"], "event": r["event"], "actor": r["actor"],
                 "detail": json.loads(r["detail"]), "at": r["at"].isoformat()}
                for r in rows]  # fmt: skip

    # -- assignments ----------------------------------------------------------------------

    async def assign(
        self, account: str, plan_name: str, start: datetime, *, at: datetime, actor: str
    ) -> Assignment:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "select currency, status from accounts where id = $1 for update", account
            )
            if row is None:
                raise AccountNotFound(account)
            if row["status"] == "closed":
                raise PlanError("account", f"account {account!r} is closed")
            plan = await _plan(conn, plan_name)
            if plan.disabled:
                raise PlanError("plan", f"plan {plan_name!r} is disabled")
            if plan.currency != row["currency"]:
                raise PlanError("plan", f"plan {plan_name!r} is in {plan.currency},"
                                f" the account in {row['currency']}")  # fmt: skip
            clash = await conn.fetchrow(
                "select id, plan, start_at from account_plans where account = $1"
                " and (end_at is null or end_at > $2) order by start_at limit 1",
                account,
                start,
            )
            if clash is not None:
                raise PlanConflict("start", f"account {account!r} has plan {clash['plan']!r}"
                                   f" from {clash['start_at'].isoformat()}: unassign it first")
            made = await conn.fetchrow(
                "insert into account_plans (account, plan, start_at, created_at)"
                " values ($1, $2, $3, $4) returning *",
                account, plan_name, start, at,
            )  # fmt: skip
            assert made is not None
            await _event(conn, plan_name, account, "assigned", actor,
                         {"start_at": start.isoformat(), "assignment": made["id"]}, at)
        await self.mirror(account)
        return _assignment(made)

    async def unassign(
        self, account: str, end: datetime, *, at: datetime, actor: str
    ) -> Assignment:
        """End the account's open assignment at `end` (calls starting then are not covered;
        fees already charged stay charged)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "select * from account_plans where account = $1 and end_at is null for update",
                account,
            )
            if row is None:
                raise PlanError("account", f"account {account!r} has no open plan")
            if end <= row["start_at"]:
                raise PlanError("end", f"must be after the start, {row['start_at'].isoformat()}")
            done = await conn.fetchrow(
                "update account_plans set end_at = $2 where id = $1 returning *", row["id"], end
            )
            assert done is not None
            await _event(conn, row["plan"], account, "unassigned", actor,
                         {"end_at": end.isoformat(), "assignment": row["id"]}, at)
        await self.mirror(account)
        return _assignment(done)

    async def assignments(self, account: str) -> list[Assignment]:
        rows = await self.pool.fetch(
            "select * from account_plans where account = $1 order by start_at", account
        )
        return [_assignment(r) for r in rows]

    # -- the mirror -----------------------------------------------------------------------

    async def bundles_of(self, account: str) -> str:
        """The account's `bundles` field as PostgreSQL says it should be."""
        async with self.pool.acquire() as conn:
            tz = await conn.fetchval("select timezone from accounts where id = $1", account)
            if tz is None:
                raise AccountNotFound(account)
            rows = await conn.fetch(
                "select * from account_plans where account = $1 order by start_at", account
            )
            plans = {n: await _plan(conn, n) for n in {r["plan"] for r in rows}}
        return encode(((_assignment(r), plans[r["plan"]]) for r in rows), tz)

    async def mirror(self, account: str) -> str:
        """Write the account's `bundles` field (removed when it has no plan)."""
        text = await self.bundles_of(account)
        ledger = self.accounts.ledger
        key = ledger.keys.account(account)
        if text:
            # never on a missing hash: that would hide a lost account from the repair
            if await ledger.redis.exists(key):
                await ledger.redis.hset(key, "bundles", text)
        else:
            await ledger.redis.hdel(key, "bundles")
        return text

    async def mirror_all(self) -> int:
        """Every account that has or had a plan (start-up repair). Returns how many."""
        rows = await self.pool.fetch("select distinct account from account_plans order by 1")
        for r in rows:
            await self.mirror(r["account"])
        return len(rows)

    async def restore_usage(self, account: str) -> int:
        """Put back the bundle seconds the account's CDRs consumed (Redis lost the account),
        per bundle and month; returns how many bundle-months."""
        rows = await self.pool.fetch(
            "select bundle, sum(bundle_seconds)::bigint as used from cdrs where account = $1"
            " and bundle <> '' group by bundle",
            account,
        )
        ledger = self.accounts.ledger
        fields = [x for r in rows for x in (f"bu:{r['bundle']}", str(r["used"]))]
        if fields:
            await ledger.redis.hset(ledger.keys.account(account), mapping=dict(
                zip(fields[::2], fields[1::2], strict=True)))  # fmt: skip
        return len(rows)

    async def usage(self, account: str, at: datetime) -> list[dict[str, Any]]:
        """The bundles of the plan in force at `at` and their seconds in that month: the
        allowance, consumed (finished calls), reserved (open calls) and left."""
        async with self.pool.acquire() as conn:
            tz = await conn.fetchval("select timezone from accounts where id = $1", account)
            if tz is None:
                raise AccountNotFound(account)
            rows = await conn.fetch(
                "select * from account_plans where account = $1 and start_at <= $2"
                " and (end_at is null or end_at > $2)",
                account,
                at,
            )
            plans = {r["plan"]: await _plan(conn, r["plan"]) for r in rows}
        period = period_of(at, tz)
        ledger = self.accounts.ledger
        out = []
        for r in rows:
            a = _assignment(r)
            first = period_of(a.start_at, tz) == period
            for i, allowance in enumerate(plans[a.plan].allowances):
                used, held = usage_fields(a.id, i, period)
                values = await ledger.redis.hmget(ledger.keys.account(account), [used, held])
                seconds = pro_rata(allowance.seconds, a.start_at, tz) if first else (
                    allowance.seconds)  # fmt: skip
                consumed, reserved = (int(v or 0) for v in values)
                out.append({"plan": a.plan, "assignment": a.id, "allowance": i,
                            "label": allowance.label, "period": period, "seconds": seconds,
                            "consumed": consumed, "reserved": reserved,
                            "left": max(0, seconds - consumed - reserved)})  # fmt: skip
        return out
