"""Warn, then suspend (terms §5.1: a suspension for a violation only after a call to stop and
an unmet deadline) and a closure proposed on a repeat (acceptable-use policy: "the account
will be closed if the abuse repeats" — proposed to an operator, never automatic).

- A finding whose severity calls for a warning either starts one (the customer is told,
  with a deadline) or, when the account already has a warning in force for the same rule,
  continues it (linked by warning_id; no second notice).
- `enforce(now)` (the scheduler) suspends the account of each warning whose deadline has
  passed and whose behaviour was seen again at or after the deadline (event times from the
  CDRs, on the warned finding or those continuing it).
- A new finding that calls for at least a warning, on an account whose earlier warned or
  suspended finding is over (its deadline passed, or lifted or closed) within the repeat
  window, proposes closing the account; an operator accepts (the account is closed) or
  rejects it. A finding lifted as a false alarm is no earlier episode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from abuse import customer_notices, findings
from abuse.findings import ACTIVE, Finding, FindingStateError, add_event
from abuse.settings import AbuseSettings, Action
from abuse.suspension import suspend_account
from core.pg import Conn
from notify.settings import NotifySettings
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound, AccountStatus

_ACTIVE = [s.value for s in ACTIVE]


@dataclass(frozen=True, slots=True)
class Warned:
    deadline: datetime | None  # set when this finding was warned now
    continues: int | None  # the warned finding it continues


async def _outstanding(conn: Conn, f: Finding) -> int | None:
    """The account's warning in force for the finding's rule (not this finding)."""
    found = await conn.fetchval(
        "select id from abuse_findings where account = $1 and rule = $2 and id <> $3"
        " and warning_id is null and warned_at is not null and status = any($4::text[])"
        " order by warned_at desc, id desc limit 1",
        f.account,
        f.rule,
        f.id,
        _ACTIVE,
    )
    return int(found) if found is not None else None


async def warn(
    pool: asyncpg.Pool,
    accounts: AccountStore,
    settings: AbuseSettings,
    notify: NotifySettings,
    f: Finding,
    at: datetime,
) -> Warned:
    """Warn the customer about `f` (deadline `at` + the setting), or link it to the warning in
    force for its rule. One account's warnings are decided one at a time."""
    try:
        account = await accounts.get(f.account)
    except AccountNotFound:
        return Warned(None, None)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"abuse:{f.account}")
        earlier = await _outstanding(conn, f)
        if earlier is not None:
            await conn.execute(
                "update abuse_findings set warning_id = $2 where id = $1", f.id, earlier
            )
            await add_event(conn, earlier, "continued", detail={"finding": f.id}, at=at)
            return Warned(None, earlier)
        # a replay (crash before the action was remembered) keeps the first deadline
        deadline = await conn.fetchval(
            "update abuse_findings set warned_at = coalesce(warned_at, $2),"
            " deadline_at = coalesce(deadline_at, $3) where id = $1 returning deadline_at",
            f.id,
            at,
            at + timedelta(hours=settings.warn_deadline_h),
        )
        await customer_notices.warning(conn, notify, account, f, deadline, at)
        return Warned(deadline, None)


async def propose_closure_on_repeat(
    pool: asyncpg.Pool, settings: AbuseSettings, f: Finding, at: datetime
) -> int | None:
    """If `f` repeats an earlier episode within the window, propose closing the account
    (unless a proposal for it awaits an operator); the earlier finding's id, or None."""
    if settings.repeat_window_days <= 0:
        return None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", f"abuse:{f.account}")
        prior = await conn.fetchval(
            "select id from abuse_findings where account = $1 and id <> $2"
            " and warning_id is null and action in ('warn', 'suspend') and not false_alarm"
            " and coalesce(warned_at, last_seen_at, created_at) >= $3"
            " and ((deadline_at is not null and deadline_at <= $4)"
            "      or status in ('lifted', 'closed'))"
            " order by id desc limit 1",
            f.account,
            f.id,
            at - timedelta(days=settings.repeat_window_days),
            at,
        )
        if prior is None:
            return None
        pending = await conn.fetchval(
            "select id from abuse_findings where account = $1 and closure = 'proposed'"
            " and id <> $2 limit 1",
            f.account,
            f.id,
        )
        if pending is not None:
            return None  # one proposal at a time: the operator is deciding on it already
        done = await conn.fetchval(
            "update abuse_findings set closure = 'proposed', closure_at = $2"
            " where id = $1 and closure is null returning id",
            f.id,
            at,
        )
        if done is not None:
            await add_event(conn, f.id, "closure_proposed", detail={"repeats": prior}, at=at)
        return int(prior)


# -- the scheduler: deadlines ----------------------------------------------------------------------

_OVERDUE = (
    "select w.*, c.continued_at from abuse_findings w"
    " cross join lateral (select max(g.last_seen_at) as continued_at from abuse_findings g"
    "   where g.id = w.id or g.warning_id = w.id) c"
    " where w.warning_id is null and w.deadline_at is not null and w.deadline_at <= $1"
    " and not w.suspended and w.action = 'warn' and w.status = any($2::text[])"
    " and c.continued_at >= w.deadline_at order by w.deadline_at, w.id limit $3"
)


async def enforce(
    pool: asyncpg.Pool,
    accounts: AccountStore,
    notify: NotifySettings,
    now: datetime,
    batch: int = 500,
) -> list[Finding]:
    """Suspend the accounts whose warning's deadline passed with the behaviour going on; the
    warned findings that now hold a suspension (or found the account closed or gone)."""
    done: list[Finding] = []
    for row in await pool.fetch(_OVERDUE, now, _ACTIVE, batch):
        f = findings.from_row(row)
        s = await suspend_account(pool, accounts, f, now)
        detail = {"deadline": f.deadline_at, "continued_at": row["continued_at"]}
        await findings.set_action(pool, f.id, Action.SUSPEND, s.holds, at=now, detail=detail)
        if s.account is not None and s.changed:
            async with pool.acquire() as conn, conn.transaction():
                await customer_notices.suspension(conn, notify, s.account, f, "deadline", now)
        done.append(f)
    return done


# -- operators: closures ---------------------------------------------------------------------------


async def decide_closure(
    pool: asyncpg.Pool,
    accounts: AccountStore,
    finding_id: int,
    accept: bool,
    who: str,
    why: str,
    now: datetime,
) -> Finding:
    """Accept (the account is closed, the finding too) or reject a proposed closure."""
    f = await findings.get(pool, finding_id)
    verb = "accept the closure of" if accept else "reject the closure of"
    if f.closure != "proposed":
        raise FindingStateError(finding_id, f"closure {f.closure or 'not proposed'}", verb)
    async with pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            "update abuse_findings set closure = $2, closure_at = $3, updated_at = now()"
            " where id = $1 and closure = 'proposed' returning id",
            finding_id,
            "accepted" if accept else "rejected",
            now,
        )
        if changed is None:  # decided by someone else meanwhile
            raise FindingStateError(finding_id, "closure decided", verb)
        event = "closure_accepted" if accept else "closure_rejected"
        await add_event(conn, finding_id, event, who, why, at=now)
    if not accept:
        return await findings.get(pool, finding_id)
    account = await accounts.get(f.account)
    if account.status is not AccountStatus.CLOSED:
        reason = f"abuse repeated (finding #{f.id}), closure accepted by {who}"
        await accounts.set_status(f.account, AccountStatus.CLOSED, reason, at=now)
    if f.active or f.status.value == "lifted":
        return await findings.close(pool, finding_id, who, why or "account closed")
    return await findings.get(pool, finding_id)
