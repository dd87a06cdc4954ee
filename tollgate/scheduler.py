"""`tollgate scheduler`: the periodic work, run by tollgate itself instead of cron.

Jobs, each once per day of the billing zone (TOLLGATE_BILLING_TIMEZONE), from
TOLLGATE_SCHEDULER_AT_HOUR (3) local time on:
- bill_run: `bill run` for the previous month (idempotent: fees, invoices, overdue flags,
  prepaid lifecycle are all keyed so a second run adds nothing);
- cdr_partitions: create the coming months' CDR partitions, drop those past the retention
  (TOLLGATE_CDR_RETENTION_MONTHS, at least 12: complaints may come 12 months late);
- complaints: unanswered complaints past their deadline are deemed accepted;
- ksef: after bill_run, the B2B documents KSeF has not accepted yet are sent and the UPOs
  not kept yet fetched (`bill ksef-pending`), when TOLLGATE_KSEF_URL is set.
And at every tick:
- abuse_deadlines: suspend the accounts whose abuse warning's deadline passed with the
  behaviour going on (terms §5.1; abuse/warnings.py);
- trials: each trial's due step (paid: resumed; ended: blocked; later: closed;
  billing/trials.py);
- cut_calls (after those two): the running outbound calls of suspended or closed accounts
  are hung up through this switch's ARI (TOLLGATE_ARI_URL; switch/cutoff.py), so a
  suspension decided off the call path does not leave calls running to their grant's end.
  Without ARI here (docker-compose.yml: only serve reaches Asterisk's loopback) the job
  names them and leaves them to serve's sweeper, which cuts them within its interval.
Listed in a tick's outcome only when they did something.

Safe in several replicas at once: a tick runs only while holding a PostgreSQL advisory lock
(try-lock: a replica that does not get it skips the tick), and a job is due only when its
last success (table scheduler_runs) is before today. Every replica exports the last success
per job (`tollgate_scheduler_last_success_timestamp_seconds`); TollgateSchedulerLate fires
when one is more than a day and a few hours old.

Time is an argument: `tick(now)`; only the process loop reads the clock."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from billing.period import Period
from billing.run import bill_run
from billing.settings import BillingSettings
from cdr.partitions import DEFAULT_RETENTION_MONTHS, drop_expired, ensure_months, months_ahead
from core.env import EnvReader, SettingsError
from runtime.services import Services
from switch.ari import AriClient, AriSettings

log = logging.getLogger("tollgate.scheduler")
LOCK_ID = 0x7011_5C4E  # pg advisory lock: one scheduler tick at a time, across replicas
JOBS = (
    "bill_run",
    "cdr_partitions",
    "complaints",
    "ksef",
    "abuse_deadlines",
    "trials",
    "cut_calls",
)
# not once a day: deadlines are instants, and a suspended account's calls are cut at once
EVERY_TICK = frozenset({"abuse_deadlines", "trials", "cut_calls"})


@dataclass(frozen=True)
class SchedulerSettings:
    interval_s: float = 60.0
    at_hour: int = 3  # local hour (billing zone) from which the day's jobs are due
    retention_months: int = DEFAULT_RETENTION_MONTHS
    ari: AriSettings = field(default_factory=AriSettings)  # cut_calls: this switch's ARI

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SchedulerSettings:
        r = EnvReader("TOLLGATE_SCHEDULER_", env)
        base = cls()
        at_hour = r.get("AT_HOUR", int, base.at_hour)
        if not 0 <= at_hour <= 23:
            raise SettingsError("TOLLGATE_SCHEDULER_AT_HOUR", f"0..23, not {at_hour}")
        interval = r.get("INTERVAL_S", float, base.interval_s)
        if interval <= 0:
            raise SettingsError("TOLLGATE_SCHEDULER_INTERVAL_S", "must be positive")
        return cls(
            interval_s=interval,
            at_hour=at_hour,
            retention_months=EnvReader("TOLLGATE_CDR_", env).get(
                "RETENTION_MONTHS", int, base.retention_months
            ),
            ari=AriSettings.from_env(env),
        )


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.last_success = Gauge(
            "tollgate_scheduler_last_success_timestamp_seconds",
            "When each scheduled job last succeeded (any replica), epoch seconds.",
            ["task"],  # not "job": Prometheus' own target label
            registry=self.registry,
        )
        self.runs = Counter(
            "tollgate_scheduler_runs_total",
            "Scheduled job runs by this process, by result.",
            ["task", "result"],
            registry=self.registry,
        )
        for job in JOBS:
            for result in ("ok", "failed"):
                self.runs.labels(job, result)
        self.complaints = Gauge(
            "tollgate_complaints_open",
            "Complaints not yet answered, by how soon their deadline is (terms §12).",
            ["due"],
            registry=self.registry,
        )


def is_due(last_success: datetime | None, now: datetime, timezone: str, at_hour: int) -> bool:
    """Due once per local day, from `at_hour` on: a missed day is caught up at the next
    tick (the jobs are idempotent, so catching up twice would be harmless too)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if local.hour < at_hour:
        return False
    return last_success is None or last_success.astimezone(zone).date() < local.date()


Job = Callable[[Services, SchedulerSettings, datetime], Awaitable[str]]


async def job_bill_run(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    billing = BillingSettings.from_env()
    period = Period.of(now, billing.timezone).shifted(-1)
    report = await bill_run(s.accounts, period, billing, now)
    if report.failed:
        raise RuntimeError(f"accounts not billed: {', '.join(sorted(report.failed))}")
    return f"billed {period}"


async def job_cdr_partitions(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        created = await ensure_months(conn, months_ahead(now))
        dropped = await drop_expired(conn, settings.retention_months, now)
    return f"created {created or 'none'}, dropped {dropped or 'none'}"


async def job_complaints(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    """Complaints unanswered at their deadline are deemed accepted (terms §12.4); their
    answered_at is the deadline itself, however late in the day this runs."""
    from billing.complaints import settle_overdue

    assert s.pool is not None
    async with s.pool.acquire() as conn:
        settled = await settle_overdue(s.accounts, conn, BillingSettings.from_env(), now)
    return f"deemed accepted: {', '.join(str(c.id) for c in settled) or 'none'}"


async def job_ksef(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    """What KSeF still lacks (documents, UPOs); a document that failed fails the job, so it
    is tried again at the next tick and shows in TollgateSchedulerLate if it keeps failing."""
    from billing.ksef_batch import ksef_pass
    from billing.ksef_send import KsefClientGateway, KsefSettings

    ksef = KsefSettings.from_env()
    if not ksef.url:
        return "KSeF not configured"
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        report = await ksef_pass(conn, KsefClientGateway(ksef), BillingSettings.from_env(), now)
    if report.failed:
        raise RuntimeError(f"not in KSeF: {', '.join(f['number'] for f in report.failed)}")
    return f"sent {len(report.sent)}, UPOs asked {len(report.upo)}"
async def job_abuse_deadlines(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    """Warned accounts that went on past the deadline are suspended; "" when none."""
    from abuse.warnings import enforce
    from notify.settings import NotifySettings

    assert s.pool is not None
    done = await enforce(s.pool, s.accounts, NotifySettings.from_env(), now)
    if not done:
        return ""
    return "suspended after the deadline: " + ", ".join(f"#{f.id} {f.account}" for f in done)


async def job_trials(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    """Each open trial's due step; "" when none was due."""
    from billing.trials import advance

    assert s.pool is not None
    done = await advance(s.accounts, s.pool, now)
    return "; ".join(f"{step}: {', '.join(a)}" for step, a in done.items() if a)


async def job_cut_calls(s: Services, settings: SchedulerSettings, now: datetime) -> str:
    """Hang up the running outbound calls of suspended or closed accounts; "" when none. A
    call ARI could not hang up fails the job (retried at the next tick, and visible)."""
    from switch.cutoff import cut, to_cut

    calls = await to_cut(s.ledger)
    if not calls:
        return ""
    names = ", ".join(sorted(f"{r.get('account')}/{r.get('call_id')}" for r in calls))
    if not settings.ari.enabled:
        # serve holds the switch's ARI and its sweeper cuts these (tollgate/serve.py)
        log.info("calls of inactive accounts left to tollgate serve (no ARI here): %s", names)
        return f"left to tollgate serve (no TOLLGATE_ARI_URL here): {names}"
    client = AriClient(settings.ari)
    try:
        done = await cut(s.ledger, client, calls)
    finally:
        await client.close()
    if done.failed:
        raise RuntimeError(done.summary())
    return done.summary()


JOB_FUNCTIONS: dict[str, Job] = {
    "bill_run": job_bill_run,
    "cdr_partitions": job_cdr_partitions,
    "complaints": job_complaints,
    "ksef": job_ksef,  # after bill_run: sends what that run issued
    "abuse_deadlines": job_abuse_deadlines,
    "trials": job_trials,
    "cut_calls": job_cut_calls,  # after the jobs that suspend: their accounts' calls end now
}


async def export_complaints(pool: asyncpg.Pool, metrics: SchedulerMetrics, now: datetime) -> None:
    """Every replica exports the open complaints: overdue (the complaints job has not deemed
    them accepted yet), due within 48 hours (answer them now), later."""
    row = await pool.fetchrow(
        "select count(*) filter (where due_at <= $1) as overdue,"
        " count(*) filter (where due_at > $1 and due_at <= $1 + interval '48 hours') as soon,"
        " count(*) filter (where due_at > $1 + interval '48 hours') as later"
        " from complaints where status in ('filed', 'acknowledged')",
        now,
    )
    assert row is not None  # an aggregate always yields a row
    for label, column in (("overdue", "overdue"), ("within_48h", "soon"), ("later", "later")):
        metrics.complaints.labels(label).set(row[column])


async def last_successes(pool: asyncpg.Pool) -> dict[str, datetime | None]:
    rows = await pool.fetch("select job, last_success_at from scheduler_runs")
    found = {r["job"]: r["last_success_at"] for r in rows}
    return {job: found.get(job) for job in JOBS}


async def tick(
    s: Services,
    settings: SchedulerSettings,
    metrics: SchedulerMetrics,
    now: datetime,
    jobs: Mapping[str, Job] = JOB_FUNCTIONS,
) -> dict[str, str]:
    """Run the due jobs if this replica gets the lock; {job: outcome} of what it ran
    ({"": "locked"} when another replica holds the lock)."""
    assert s.pool is not None
    timezone = BillingSettings.from_env().timezone
    ran: dict[str, str] = {}
    async with s.pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("select pg_try_advisory_lock($1)", LOCK_ID):
            ran[""] = "locked"
        else:
            try:
                last = await last_successes(s.pool)
                for job, fn in jobs.items():
                    if job in EVERY_TICK:
                        if outcome := await _run(s, settings, metrics, job, fn, now):
                            ran[job] = outcome
                    elif is_due(last.get(job), now, timezone, settings.at_hour):
                        ran[job] = await _run(s, settings, metrics, job, fn, now)
            finally:
                await lock_conn.execute("select pg_advisory_unlock($1)", LOCK_ID)
    for job, at in (await last_successes(s.pool)).items():
        if at is not None:
            metrics.last_success.labels(job).set(at.timestamp())
    await export_complaints(s.pool, metrics, now)
    return ran


async def _run(
    s: Services,
    settings: SchedulerSettings,
    metrics: SchedulerMetrics,
    job: str,
    fn: Job,
    now: datetime,
) -> str:
    assert s.pool is not None
    try:
        outcome = await fn(s, settings, now)
    except Exception as exc:  # a failed job is recorded and retried at the next tick
        log.exception("scheduled job %s failed", job)
        await s.pool.execute(
            "insert into scheduler_runs (job, last_attempt_at, last_error) values ($1, $2, $3)"
            " on conflict (job) do update set last_attempt_at = $2, last_error = $3",
            job,
            now,
            f"{type(exc).__name__}: {exc}",
        )
        metrics.runs.labels(job, "failed").inc()
        return f"failed: {exc}"
    await s.pool.execute(
        "insert into scheduler_runs (job, last_success_at, last_attempt_at) values ($1, $2, $2)"
        " on conflict (job) do update set last_success_at = $2, last_attempt_at = $2,"
        " last_error = ''",
        job,
        now,
    )
    metrics.runs.labels(job, "ok").inc()
    if outcome:
        log.info("scheduled job %s: %s", job, outcome)
    return outcome
