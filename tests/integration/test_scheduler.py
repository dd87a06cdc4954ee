"""`tollgate scheduler` on the real PostgreSQL: jobs due once per local day, run by one
replica at a time (advisory lock), failures recorded and retried, last successes exported.
Every instant is pinned (a DST change, a month end, UTC midnight)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from runtime.services import Services
from tollgate.scheduler import (
    EVERY_TICK,
    JOB_FUNCTIONS,
    JOBS,
    LOCK_ID,
    SchedulerMetrics,
    SchedulerSettings,
    is_due,
    tick,
)

# Jobs run once a day; the every-tick ones appear in a tick's outcome only when they act.
DAILY = tuple(j for j in JOBS if j not in EVERY_TICK)

WARSAW = "Europe/Warsaw"
# 2026-03-29: clocks go from 02:00 CET to 03:00 CEST in Warsaw. 01:30 UTC = 03:30 CEST.
DST_DAY = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (None, DST_DAY, True),  # never ran, 03:30 local
        (None, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), False),  # 01:30 CET: before 03:00
        (DST_DAY - timedelta(hours=1), DST_DAY, False),  # ran earlier the same local day
        (datetime(2026, 3, 28, 2, 0, tzinfo=UTC), DST_DAY, True),  # yesterday 03:00 CET
        # UTC midnight is not the local day's end: 23:30 UTC on the 31st is 01:30 on the 1st
        (datetime(2026, 3, 31, 2, 0, tzinfo=UTC), datetime(2026, 3, 31, 23, 30, tzinfo=UTC), False),
        (datetime(2026, 3, 31, 2, 0, tzinfo=UTC), datetime(2026, 4, 1, 1, 0, tzinfo=UTC), True),
        # a missed day is caught up at the next tick
        (datetime(2026, 2, 26, 2, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, tzinfo=UTC), True),
    ],
)
def test_jobs_are_due_once_per_local_day_from_the_hour(
    last: datetime | None, now: datetime, due: bool
) -> None:
    assert is_due(last, now, WARSAW, 3) is due


SETTINGS = SchedulerSettings(at_hour=3)


def sample(metrics: SchedulerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_tick_runs_what_is_due_once_and_exports_the_last_success(svc: Services) -> None:
    metrics = SchedulerMetrics(CollectorRegistry())
    ran = await tick(svc, SETTINGS, metrics, DST_DAY)
    assert set(ran) == set(DAILY), ran
    assert ran["bill_run"] == "billed 2026-02", ran
    assert ran["complaints"] == "deemed accepted: none", ran
    assert ran["ksef"] == "KSeF not configured", ran
    assert not any(v.startswith("failed") for v in ran.values()), ran
    for job in DAILY:
        assert sample(metrics, "tollgate_scheduler_last_success_timestamp_seconds", task=job) == (
            DST_DAY.timestamp()
        )
        assert sample(metrics, "tollgate_scheduler_runs_total", task=job, result="ok") == 1
    # later the same local day: nothing is due; the next day everything is
    assert await tick(svc, SETTINGS, metrics, DST_DAY + timedelta(hours=12)) == {}
    ran = await tick(svc, SETTINGS, metrics, DST_DAY + timedelta(days=1))
    assert set(ran) == set(DAILY)


async def test_two_replicas_at_once_run_each_job_once(svc: Services) -> None:
    assert svc.pool is not None
    metrics = SchedulerMetrics(CollectorRegistry())
    # Another replica holds the lock: this one does nothing, but still exports what it reads.
    async with svc.pool.acquire() as other:
        await other.execute("select pg_advisory_lock($1)", LOCK_ID)
        try:
            assert await tick(svc, SETTINGS, metrics, DST_DAY) == {"": "locked"}
        finally:
            await other.execute("select pg_advisory_unlock($1)", LOCK_ID)
    assert sample(metrics, "tollgate_scheduler_runs_total", task="bill_run", result="ok") == 0
    # Two replicas ticking together: between them, each job ran exactly once.
    second = SchedulerMetrics(CollectorRegistry())
    results = await asyncio.gather(
        tick(svc, SETTINGS, metrics, DST_DAY), tick(svc, SETTINGS, second, DST_DAY)
    )
    for job in DAILY:
        assert sum(job in r for r in results) == 1, results
        runs = [
            sample(m, "tollgate_scheduler_runs_total", task=job, result="ok")
            for m in (metrics, second)
        ]
        assert sorted(runs) == [0, 1], runs
    # at their next tick (nothing due) both export the same last success, from the database
    for m in (metrics, second):
        assert await tick(svc, SETTINGS, m, DST_DAY + timedelta(minutes=1)) == {}
    for m in (metrics, second):
        assert sample(m, "tollgate_scheduler_last_success_timestamp_seconds", task="bill_run") == (
            DST_DAY.timestamp()
        )


async def test_a_failed_job_is_recorded_and_retried_the_others_still_run(
    svc: Services,
) -> None:
    assert svc.pool is not None
    metrics = SchedulerMetrics(CollectorRegistry())

    async def broken(s: Services, settings: SchedulerSettings, now: datetime) -> str:
        raise RuntimeError("the bank file is missing")

    jobs = {**JOB_FUNCTIONS, "bill_run": broken}
    ran = await tick(svc, SETTINGS, metrics, DST_DAY, jobs)
    assert ran["bill_run"] == "failed: the bank file is missing"
    assert not ran["cdr_partitions"].startswith("failed")
    row = await svc.pool.fetchrow("select * from scheduler_runs where job = 'bill_run'")
    assert row is not None and row["last_success_at"] is None
    assert row["last_error"] == "RuntimeError: the bank file is missing"
    assert sample(metrics, "tollgate_scheduler_runs_total", task="bill_run", result="failed") == 1
    last = sample(metrics, "tollgate_scheduler_last_success_timestamp_seconds", task="bill_run")
    assert last is None
    # the next tick (same day) tries it again, and it is due until it succeeds
    ran = await tick(svc, SETTINGS, metrics, DST_DAY + timedelta(minutes=1))
    assert set(ran) == {"bill_run"} and ran["bill_run"] == "billed 2026-02"
