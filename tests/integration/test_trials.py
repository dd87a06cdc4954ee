"""Trials (the other provider's terms) on the real PostgreSQL and Redis: a credit and an end
date; at the end blocked until paid, closed later unless paid; a notice before each step;
every instant pinned, the steps taken by the scheduler's job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing import trials
from billing.errors import BillingError
from notify.notices import list_notices
from notify.settings import NotifySettings
from notify.trials import scan
from rating.accounts import AccountNotFound
from rating.ledger import CallRequest
from runtime.services import Services
from tests.conftest import AccountFactory
from tollgate.scheduler import SchedulerMetrics, SchedulerSettings, job_trials, tick

PLN = 1_000_000
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SETTINGS = trials.TrialSettings()  # 14 days, closed 30 days after the end
NOTIFY = NotifySettings()  # told 3 days before a step
DAY = timedelta(days=1)


async def steps(svc: Services, now: datetime) -> dict[str, str]:
    return await tick(svc, SchedulerSettings(), SchedulerMetrics(), now, {"trials": job_trials})


async def kinds(svc: Services, account: str) -> list[str]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return sorted(n.kind for n in await list_notices(conn, account))


async def status(svc: Services, account: str) -> tuple[str, str]:
    pg = (await svc.accounts.get(account)).status.value
    raw = await svc.redis.hget(svc.settings.keyspace.account(account), "status")
    return pg, raw.decode() if raw else ""


async def test_an_unpaid_trial_is_blocked_at_its_end_then_closed(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    a = await make_account(at=T0)
    async with svc.pool.acquire() as conn:
        t = await trials.start(svc.accounts, conn, a.id, 10 * PLN, SETTINGS, T0)
        with pytest.raises(BillingError):
            await trials.start(svc.accounts, conn, a.id, 10 * PLN, SETTINGS, T0)
        with pytest.raises(AccountNotFound):
            await trials.start(svc.accounts, conn, "nobody", PLN, SETTINGS, T0)
    assert (t.ends_at, t.close_at) == (T0 + 14 * DAY, T0 + 44 * DAY)
    assert (await svc.accounts.live(a.id)).balance == 10 * PLN

    assert await scan(svc.pool, NOTIFY, T0 + 10 * DAY, 3) == 0
    assert await scan(svc.pool, NOTIFY, T0 + 11 * DAY, 3) == 1
    assert await kinds(svc, a.id) == ["trial_ending"]
    assert await steps(svc, t.ends_at - timedelta(seconds=1)) == {}
    assert await status(svc, a.id) == ("active", "active")

    assert await steps(svc, t.ends_at) == {"trials": f"blocked: {a.id}"}
    assert await steps(svc, t.ends_at + DAY) == {}  # once
    assert await status(svc, a.id) == ("suspended", "suspended")
    refused = await svc.ledger.authorize(CallRequest(a.id, "c-trial-1", "0601234567"))
    assert (refused.decision.value, refused.reason) == ("DENY", "ACCOUNT_SUSPENDED")
    emergency = await svc.ledger.authorize(CallRequest(a.id, "c-trial-2", "112"))
    assert emergency.reason == "EMERGENCY"
    assert await scan(svc.pool, NOTIFY, t.ends_at, 3) == 1
    assert await kinds(svc, a.id) == ["trial_blocked", "trial_ending"]

    assert await scan(svc.pool, NOTIFY, t.close_at - 3 * DAY, 3) == 1
    assert await steps(svc, t.close_at) == {"trials": f"closed: {a.id}"}
    assert await status(svc, a.id) == ("closed", "closed")
    assert await kinds(svc, a.id) == ["trial_blocked", "trial_closing", "trial_ending"]
    (closed,) = [x for x in await _trials(svc) if x.account == a.id]
    assert (closed.blocked_at, closed.closed_at) == (t.ends_at, t.close_at)


async def test_a_payment_resumes_a_blocked_trial_and_ends_an_open_one(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    blocked, early = await make_account(at=T0), await make_account(at=T0)
    async with svc.pool.acquire() as conn:
        for a in (blocked, early):
            await trials.start(svc.accounts, conn, a.id, 5 * PLN, SETTINGS, T0)
    await svc.accounts.add_entry(early.id, "topup", 20 * PLN, "t-early", at=T0 + 3 * DAY)
    end = T0 + 14 * DAY
    assert await steps(svc, end) == {"trials": f"paid: {early.id}; blocked: {blocked.id}"}
    assert await status(svc, early.id) == ("active", "active")
    assert await status(svc, blocked.id) == ("suspended", "suspended")

    await svc.accounts.add_entry(blocked.id, "payment", 30 * PLN, "p-1", at=end + 2 * DAY)
    assert await steps(svc, end + 2 * DAY) == {"trials": f"paid: {blocked.id}"}
    assert await status(svc, blocked.id) == ("active", "active")
    assert await steps(svc, T0 + 60 * DAY) == {}  # paid: never closed
    assert await scan(svc.pool, NOTIFY, T0 + 41 * DAY, 3) == 0  # nor told it would be
    assert await kinds(svc, early.id) == []


async def _trials(svc: Services) -> list[trials.Trial]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return await trials.list_trials(conn)
