"""Abuse detection against the real Redis and PostgreSQL: synthetic CDR streams shaped like
the ledger's (and calls made through the ledger itself) replayed for each pattern, the
detector run over them, and its findings and actions checked — including that a normal
business day raises nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError

from abuse import findings, overrides
from abuse.cli_args import register
from abuse.findings import Finding, FindingNotFound, FindingStateError, Status
from abuse.runner import AbuseDetector, inbound_stream_key
from abuse.settings import Action
from abuse.signals import Severity
from cdr.stream import CdrStream
from rating.accounts import AccountStatus
from rating.deck import Deck
from rating.ledger import CallRequest, Grant, Outcome
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.unit.test_abuse_rules import business_day, ledger_entry

PLN = 1_000_000
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
Make = Callable[..., AbuseDetector]


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def on_one_day(ago_ms: int, span_ms: int) -> int:
    """The start of a test's past events, `ago_ms` before now and spanning `span_ms`, moved
    earlier when they would straddle a UTC midnight: findings are kept per UTC day of their
    events, so the events of one test must fall on one day whatever the time it runs."""
    start = now_ms() - ago_ms
    end = start + span_ms
    if start // DAY != end // DAY:
        start = end - end % DAY - span_ms - S
    return start


async def today_since(ago_ms: int, span_ms: int) -> int:
    """`ago_ms` before now, but not before today's UTC midnight: a finding is kept per UTC
    day of its events, so a test whose past events and real-time calls must make one finding
    keeps them on one day whatever the time it runs (just after midnight it first waits for
    `span_ms` of today to pass, so the events are still in the past)."""
    now = now_ms()
    if now % DAY < span_ms + S:
        await asyncio.sleep((span_ms + S - now % DAY) / 1000)
        now = now_ms()
    return max(now - ago_ms, now - now % DAY)


def cid() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def mobile(i: int) -> str:
    return f"+4860{(1_234_567 + i * 7919) % 10_000_000:07d}"


async def publish(svc: Services, entries: Sequence[dict[str, str]]) -> None:
    """XADD entries to their accounts' shard streams, as the ledger's scripts do."""
    keys = svc.settings.keyspace
    pipe = svc.redis.pipeline(transaction=False)
    for e in entries:
        pipe.xadd(keys.cdr_stream(keys.tag(e["account"])), dict(e))  # type: ignore[arg-type]
    await pipe.execute()


async def publish_inbound(svc: Services, entries: Sequence[dict[str, str]]) -> None:
    pipe = svc.redis.pipeline(transaction=False)
    for e in entries:
        pipe.xadd(inbound_stream_key(svc.settings.keyspace), dict(e))  # type: ignore[arg-type]
    await pipe.execute()


async def listed(svc: Services, **filters: Any) -> list[Finding]:
    assert svc.pool is not None
    return await findings.list_findings(svc.pool, **filters)


def one(found: Sequence[Finding], rule: str, subject: str | None = None) -> Finding:
    match = [f for f in found if f.rule == rule and (subject is None or f.subject == subject)]
    assert len(match) == 1, [(f.rule, f.subject, f.severity) for f in found]
    return match[0]


def metric(d: AbuseDetector, name: str, **labels: str) -> float:
    return d.metrics.registry.get_sample_value(name, labels) or 0.0


async def authorize(svc: Services, account: str, to: str) -> Grant:
    return await svc.ledger.authorize(CallRequest(account, cid(), to, "+48221110000"))


async def ledger_call(svc: Services, account: str, to: str, billsec: int) -> Grant:
    g = await authorize(svc, account, to)
    if g.allowed:
        await svc.ledger.finish(
            account,
            g.call_id,
            Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER" if billsec else "NOANSWER"),
        )
    return g


async def status_everywhere(svc: Services, account: str) -> tuple[str, str]:
    pg = (await svc.accounts.get(account)).status.value
    raw = await svc.redis.hget(svc.settings.keyspace.account(account), "status")
    return pg, raw.decode() if raw else ""


def dialler_minute(account: str, start: int, n: int = 20) -> list[dict[str, str]]:
    """An autodialer's minute: n attempts, one in four answered for 5 s."""
    return [
        ledger_entry(
            account,
            cid(),
            start + i * 3 * S,
            mobile(i),
            "mobile",
            5 if i % 4 == 0 else 0,
            caller="+48221110000",
        )
        for i in range(n)
    ]


# -- webhook receiver ------------------------------------------------------------------------------


@dataclass
class Hook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def webhook() -> AsyncIterator[Hook]:
    hook = Hook("")

    async def handle(request: web.Request) -> web.Response:
        hook.received.append(await request.json())
        return web.Response(status=hook.status)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    hook.url = f"http://{host}:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


# -- each pattern ----------------------------------------------------------------------------------


async def test_autodialer_is_suspended_and_emergency_still_goes_out(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    hung_up: list[str] = []

    async def on_suspend(account: str) -> None:
        hung_up.append(account)

    d = abuse_detector(on_suspend=on_suspend)
    entries = dialler_minute(a.id, on_one_day(5 * MIN, MIN))
    await publish(svc, entries)
    assert await d.drain_once() == 20

    f = one(await listed(svc, account=a.id), "autodialing", "rate")
    assert (f.severity, f.status, f.action, f.suspended) == (
        Severity.CRITICAL,
        Status.OPEN,
        Action.SUSPEND,
        True,
    )
    assert f.evidence["figures"]["attempts_1m"] == 20  # critical from 3 x 5 a minute
    assert f.evidence["threshold"]["per_minute"] == 5
    assert sorted(f.evidence["call_ids"]) == sorted(e["call_id"] for e in entries)
    assert await status_everywhere(svc, a.id) == ("suspended", "suspended")
    assert hung_up == [a.id]

    refused = await authorize(svc, a.id, "0601234567")
    assert (refused.decision.value, refused.reason) == ("DENY", "ACCOUNT_SUSPENDED")
    emergency = await authorize(svc, a.id, "112")
    assert (emergency.decision.value, emergency.reason) == ("ALLOW", "EMERGENCY")

    assert metric(d, "tollgate_abuse_suspensions_total") == 1
    assert metric(d, "tollgate_abuse_cdrs_processed_total") == 20
    assert metric(d, "tollgate_abuse_findings_total", rule="autodialing", severity="warning") == 1
    assert metric(d, "tollgate_abuse_findings_total", rule="autodialing", severity="critical") == 1
    assert svc.pool is not None
    history = [
        r["event"]
        for r in await svc.pool.fetch(
            "select event from abuse_finding_events where finding_id = $1 order by id", f.id
        )
    ]
    assert history == ["created", "warn", "escalated", "suspend"]


async def test_sequential_dialling_through_the_ledger(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    grants = [await ledger_call(svc, a.id, f"022123450{k}", 0) for k in (2, 0, 1, 4, 3, 5)]
    assert all(g.allowed for g in grants)
    await abuse_detector().drain_once()
    f = one(await listed(svc, account=a.id), "autodialing", "sequential")
    assert (f.severity, f.action) == (Severity.WARNING, Action.WARN)
    assert f.evidence["figures"] == {"run": 6, "first": "+48221234500"}
    assert sorted(f.evidence["call_ids"]) == sorted(g.call_id for g in grants)
    assert await status_everywhere(svc, a.id) == ("active", "active")


def robocalls(account: str, start: int, caller: str, n: int = 40) -> list[dict[str, str]]:
    return [
        ledger_entry(
            account,
            cid(),
            start + i * 40 * S,
            mobile(i),
            "mobile",
            18 + i % 5,
            answered=i % 5 < 2,
            caller=caller,
        )
        for i in range(n)
    ]


async def test_broadcast_alert_reaches_the_webhook(
    svc: Services, make_account: AccountFactory, abuse_detector: Make, webhook: Hook
) -> None:
    a = await make_account()
    d = abuse_detector(webhook_url=webhook.url)
    await publish(svc, robocalls(a.id, on_one_day(HOUR, 27 * MIN), "+48225550000"))
    await d.drain_once()
    await d.actions.flush()
    f = one(await listed(svc, account=a.id), "broadcasting")
    assert (f.subject, f.severity, f.action) == ("+48225550000", Severity.WARNING, Action.WARN)
    assert f.evidence["figures"]["distinct"] >= 30 and f.evidence["figures"]["asr"] < 0.6
    sent = [p for p in webhook.received if p["finding"]["rule"] == "broadcasting"]
    assert len(sent) == 1
    assert sent[0]["finding"]["id"] == f.id and sent[0]["action"] == "warn"
    alerted = sent[0]["finding"]["evidence"]  # as it was when it fired; the row moved on
    assert alerted["figures"]["distinct"] == 30 and len(alerted["call_ids"]) == 30
    assert set(alerted["call_ids"]) <= set(f.evidence["call_ids"])
    assert metric(d, "tollgate_abuse_alert_failures_total") == 0


async def test_failed_alerts_are_metered_and_never_block(
    svc: Services, make_account: AccountFactory, abuse_detector: Make, webhook: Hook
) -> None:
    a, b = await make_account(), await make_account()
    webhook.status = 500
    broken = abuse_detector(webhook_url=webhook.url)
    await publish(svc, robocalls(a.id, on_one_day(HOUR, 27 * MIN), "+48225550000"))
    await broken.drain_once()
    await broken.actions.flush()
    assert metric(broken, "tollgate_abuse_alert_failures_total") >= 1
    assert one(await listed(svc, account=a.id), "broadcasting").action is Action.WARN
    await broken.close()
    # nobody listening at all, and a tiny timeout: still recorded, still counted
    gone = abuse_detector(
        webhook_url="http://127.0.0.1:9/hook", webhook_timeout_s=0.2, consumer="other"
    )
    await publish(svc, robocalls(b.id, on_one_day(HOUR, 27 * MIN), "+48225550001"))
    await gone.drain_once()
    await gone.actions.flush()
    assert metric(gone, "tollgate_abuse_alert_failures_total") >= 1
    assert one(await listed(svc, account=b.id), "broadcasting").severity is Severity.WARNING


async def test_excessive_forwarding(
    svc: Services, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account()
    start = on_one_day(HOUR, 50 * MIN)
    legs = [
        ledger_entry(
            a.id,
            cid(),
            start + i * 2 * MIN,
            mobile(i),
            "mobile",
            60,
            caller="+48221110000",
            rdnis="+48221110001",
        )
        for i in range(22)
    ]
    abroad = [
        ledger_entry(
            a.id,
            cid(),
            start + i * 5 * MIN,
            f"+4930123456{i}",
            "international",
            60,
            caller="+48221110000",
            forwarded="1",
        )
        for i in range(3)
    ]
    await publish(svc, legs + abroad)
    await abuse_detector().drain_once()
    found = await listed(svc, account=a.id)
    assert one(found, "forwarding", "legs").evidence["figures"]["forwarded_legs"] >= 20
    risky = one(found, "forwarding", "risky")
    assert risky.severity is Severity.WARNING
    assert sorted(risky.evidence["call_ids"]) == sorted(e["call_id"] for e in abroad)


async def test_revenue_share_burst_through_the_ledger_suspends(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=50 * PLN)
    grants = [await authorize(svc, a.id, f"+8821300000{i:02d}") for i in range(10)]
    assert {g.reason for g in grants} == {"DESTINATION_BLOCKED"}  # fraudsters test first
    await abuse_detector().drain_once()
    f = one(await listed(svc, account=a.id), "revenue_share", "high_risk_burst")
    assert (f.severity, f.suspended) == (Severity.CRITICAL, True)
    assert f.evidence["figures"] == {"high_risk_calls": 10}
    assert await status_everywhere(svc, a.id) == ("suspended", "suspended")


async def test_revenue_share_parallel_long_calls_and_spend_velocity(
    svc: Services, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account()
    start = on_one_day(2 * HOUR, 50 * MIN)
    # eight 40-minute calls to Germany side by side, 15.00 each
    calls = [
        ledger_entry(
            a.id,
            cid(),
            start + i * MIN,
            f"+49301234{i * 37:04d}",
            "international",
            2400,
            cost=15 * PLN,
        )
        for i in range(8)
    ]
    await publish(svc, calls)
    await abuse_detector().drain_once()
    found = await listed(svc, account=a.id)
    parallel = one(found, "revenue_share", "parallel_long")
    assert parallel.severity is Severity.CRITICAL and parallel.evidence["figures"]["parallel"] == 8
    spend = one(found, "revenue_share", "spend_velocity")
    assert spend.severity is Severity.WARNING
    assert spend.evidence["figures"]["spent_window"] == 120 * PLN  # fired at 7 x 15.00
    assert spend.evidence["threshold"]["spend_floor"] == 100 * PLN


async def test_wangiri_bait_then_callback(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    start = await today_since(30 * MIN, 5 * S)
    bait = [
        {"account": a.id, "caller": f"+2327612{i:04d}", "duration": "1", "ts": str(start + i * S)}
        for i in range(6)
    ]
    await publish_inbound(svc, bait)
    d = abuse_detector()
    await d.drain_once()
    f = one(await listed(svc, account=a.id), "wangiri", "+2327612")
    assert (f.severity, f.action) == (Severity.INFO, Action.RECORD)
    assert metric(d, "tollgate_abuse_inbound_processed_total") == 6
    # someone calls the missed number back (the retail deck has no rate for it: refused,
    # but the attempt is what the fraud waits for)
    back = await authorize(svc, a.id, "+23276120003")
    assert back.reason == "NO_RATE"
    await d.drain_once()
    f = one(await listed(svc, account=a.id), "wangiri", "+2327612")
    assert (f.severity, f.action) == (Severity.WARNING, Action.WARN)
    assert f.evidence["figures"] == {"short_inbound": 6, "callbacks": 1}
    assert f.evidence["call_ids"] == [back.call_id]


async def test_premium_attempts_through_the_ledger(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    grants = [await authorize(svc, a.id, "0701234567") for _ in range(3)]
    assert {g.reason for g in grants} == {"PREMIUM_BLOCKED"}
    await abuse_detector().drain_once()
    f = one(await listed(svc, account=a.id), "premium")
    assert (f.severity, f.action) == (Severity.WARNING, Action.WARN)
    assert sorted(f.evidence["call_ids"]) == sorted(g.call_id for g in grants)


# -- no false positives ----------------------------------------------------------------------------


async def test_a_normal_business_day_raises_nothing(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    names = ("office", "sales", "shop")
    for name in names:
        await make_account(balance=500 * PLN, id=name)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    cdrs, calls_in = business_day(yesterday, names)
    await publish(svc, cdrs)
    await publish_inbound(svc, calls_in)
    # and today's first calls, through the ledger
    for i, to in enumerate(("0601234567", "0221234567", "+4930123456", "0800123456", "112")):
        await ledger_call(svc, "office", to, 45 + 30 * i)
    d = abuse_detector()
    assert await d.drain_once() == len(cdrs) + len(calls_in) + 5
    assert await listed(svc) == []
    for name in names:
        assert await status_everywhere(svc, name) == ("active", "active")
    assert metric(d, "tollgate_abuse_cdrs_processed_total") == len(cdrs) + 5


async def test_emergency_calls_are_never_counted(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=1 * PLN)
    start = now_ms() - 10 * MIN
    flood = [
        ledger_entry(
            a.id, cid(), start + i * S, "112", "emergency", 2, reason="EMERGENCY", emergency="1"
        )
        for i in range(60)
    ]
    await publish(svc, flood)
    for _ in range(3):
        await ledger_call(svc, a.id, "112", 1)
    assert await abuse_detector().drain_once() == 63
    assert await listed(svc) == []


# -- running, restarting, crashing -----------------------------------------------------------------


async def test_restart_keeps_window_state(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    for _ in range(2):
        await authorize(svc, a.id, "0701234567")
    first = abuse_detector()
    assert await first.drain_once() == 2
    await first.close()
    assert await listed(svc) == []
    key = f"{svc.settings.keyspace.prefix}:{svc.settings.keyspace.tag(a.id)}:abuse:{a.id}:prem"
    assert 0 < await svc.redis.ttl(key) <= 86400 + 15 * 60 + 3600
    # a new process (another consumer of the group) carries on with the same windows
    third = await authorize(svc, a.id, "0701234567")
    assert await abuse_detector(consumer="restarted").drain_once() == 1
    f = one(await listed(svc, account=a.id), "premium")
    assert f.evidence["figures"] == {"premium_denials": 3}
    assert third.call_id in f.evidence["call_ids"]


async def test_crash_before_ack_counts_nothing_twice(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await make_account(balance=10 * PLN)
    for _ in range(4):
        await authorize(svc, a.id, "0701234567")
    crashing = abuse_detector()

    async def lost(self: CdrStream, ids: Sequence[str]) -> None:
        raise RedisConnectionError("connection lost before XACK")

    with monkeypatch.context() as m:
        m.setattr(CdrStream, "ack", lost)
        with pytest.raises(RedisConnectionError):
            await crashing.drain_once()
    f = one(await listed(svc, account=a.id), "premium")  # stored before the ack
    assert f.evidence["figures"] == {"premium_denials": 4}
    # the same consumer comes back: its pending entries are read again
    again = abuse_detector()
    assert await again.drain_once() == 4
    f = one(await listed(svc, account=a.id), "premium")
    assert f.evidence["figures"] == {"premium_denials": 4}  # not 8
    assert f.action is Action.WARN
    assert await abuse_detector().drain_once() == 0  # all acknowledged now


async def test_the_same_call_id_from_two_switches_counts_as_two_calls(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    """Call ids are unique per switch only: the detector's once-per-call guard must not
    take a second switch's call for a replay of the first."""
    from dataclasses import replace

    from rating.ledger import Ledger

    a = await make_account(balance=10 * PLN)
    other = Ledger(
        svc.redis,
        svc.settings.keyspace,
        svc.ledger.decks,
        replace(svc.ledger.settings, switch_host="pbx-b"),
    )
    for n in range(2):
        for ledger in (svc.ledger, other):
            g = await ledger.authorize(CallRequest(a.id, f"1733000000.{n}", "0701234567"))
            assert g.reason == "PREMIUM_BLOCKED" and not g.replay
    assert await abuse_detector().drain_once() == 4
    f = one(await listed(svc, account=a.id), "premium")
    assert f.evidence["figures"] == {"premium_denials": 4}


async def test_the_group_is_independent_of_the_cdr_writers(
    svc: Services, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account()
    entries = dialler_minute(a.id, on_one_day(5 * MIN, MIN), 8)
    await publish(svc, entries)
    stream = svc.settings.keyspace.cdr_stream(svc.settings.keyspace.tag(a.id))
    # another group (the CDR writer) reads and acknowledges everything first
    await svc.redis.xgroup_create(stream, "cdr-writer", id="0")
    got = await svc.redis.xreadgroup("cdr-writer", "w", {stream: ">"}, count=100)
    await svc.redis.xack(stream, "cdr-writer", *[eid for eid, _ in got[0][1]])
    assert await abuse_detector().drain_once() == 8
    assert one(await listed(svc, account=a.id), "autodialing", "rate")


async def test_run_loop_detects_until_stopped(
    svc: Services, make_account: AccountFactory, abuse_detector: Make
) -> None:
    import asyncio

    a = await make_account()
    d = abuse_detector()
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    await asyncio.sleep(0.2)
    await publish(svc, dialler_minute(a.id, on_one_day(5 * MIN, MIN), 8))
    for _ in range(100):
        if await listed(svc, account=a.id):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert one(await listed(svc, account=a.id), "autodialing", "rate").severity is Severity.WARNING


# -- thresholds per account ------------------------------------------------------------------------


async def test_per_account_override_changes_the_outcome(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    lenient, disabled, plain = [await make_account(balance=PLN) for _ in range(3)]
    assert svc.pool is not None
    await overrides.set_override(svc.pool, lenient.id, "premium", {"attempts": 20})
    await overrides.set_override(svc.pool, disabled.id, "premium", {"enabled": False})
    with pytest.raises(ValueError):
        await overrides.set_override(svc.pool, plain.id, "premium", {"attempts": "many"})
    for account in (lenient, disabled, plain):
        for _ in range(5):
            await authorize(svc, account.id, "0701234567")
    await abuse_detector().drain_once()
    assert [f.account for f in await listed(svc, rule="premium")] == [plain.id]
    # back to the global thresholds: the next attempt counts the window it never left
    assert await overrides.clear_override(svc.pool, lenient.id, "premium")
    await authorize(svc, lenient.id, "0701234567")
    await abuse_detector().drain_once()
    f = one(await listed(svc, account=lenient.id), "premium")
    assert f.evidence["figures"] == {"premium_denials": 6}


# -- operators -------------------------------------------------------------------------------------


async def test_operators_acknowledge_lift_and_close(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    d = abuse_detector()
    start = on_one_day(10 * MIN, MIN)
    await publish(svc, dialler_minute(a.id, start))
    await d.drain_once()
    assert svc.pool is not None
    pool = svc.pool
    f = one(await listed(svc, status=Status.OPEN), "autodialing", "rate")
    assert f.suspended

    acked = await findings.acknowledge(pool, f.id, "eve", "looking")
    assert (acked.status, acked.status_by, acked.status_reason) == (
        Status.ACKNOWLEDGED,
        "eve",
        "looking",
    )
    with pytest.raises(FindingStateError):
        await findings.acknowledge(pool, f.id, "eve")
    lifted, resumed = await findings.lift(pool, svc.accounts, f.id, "eve", "customer's test")
    assert resumed and lifted.status is Status.LIFTED and not lifted.suspended
    assert await status_everywhere(svc, a.id) == ("active", "active")
    assert (await authorize(svc, a.id, "0601234567")).allowed
    # the same burst again in the same window: the operator's decision stands
    await publish(svc, dialler_minute(a.id, start + 2 * MIN))
    await d.drain_once()
    again = await findings.get(pool, f.id)
    assert again.status is Status.LIFTED and again.hits > f.hits
    assert await status_everywhere(svc, a.id) == ("active", "active")

    closed = await findings.close(pool, f.id, "eve", "explained")
    assert closed.status is Status.CLOSED
    with pytest.raises(FindingStateError):
        await findings.lift(pool, svc.accounts, f.id, "eve")
    with pytest.raises(FindingNotFound):
        await findings.close(pool, 10**9, "eve")


async def test_lift_resumes_only_when_no_other_finding_holds_the_account(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    for _ in range(10):
        await authorize(svc, a.id, "0701234567")  # premium: critical at 10
    await publish(svc, dialler_minute(a.id, on_one_day(5 * MIN, MIN)))
    await abuse_detector().drain_once()
    assert svc.pool is not None
    found = await listed(svc, account=a.id)
    premium, rate = one(found, "premium"), one(found, "autodialing", "rate")
    assert premium.suspended and rate.suspended
    _, resumed = await findings.lift(svc.pool, svc.accounts, premium.id, "eve")
    assert not resumed and (await status_everywhere(svc, a.id))[0] == "suspended"
    _, resumed = await findings.lift(svc.pool, svc.accounts, rate.id, "eve")
    assert resumed and (await status_everywhere(svc, a.id))[0] == "active"


async def test_an_operators_own_suspension_is_not_lifted_by_a_finding(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    for _ in range(10):
        await authorize(svc, a.id, "0701234567")
    await svc.accounts.set_status(a.id, AccountStatus.SUSPENDED, "unpaid, by hand")
    await abuse_detector().drain_once()
    assert svc.pool is not None
    f = one(await listed(svc, account=a.id), "premium")
    assert f.severity is Severity.CRITICAL and not f.suspended
    _, resumed = await findings.lift(svc.pool, svc.accounts, f.id, "eve")
    assert not resumed and (await status_everywhere(svc, a.id))[0] == "suspended"


async def test_cli_commands(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tollgate.cli import CliError

    parser = argparse.ArgumentParser(prog="tollgate")
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(["abuse", *argv])
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    a = await make_account(balance=10 * PLN)
    out = await run("override", a.id, "premium", '{"attempts": 2}')
    assert out["params"] == {"attempts": 2} and out["in_force"]["attempts"] == 2
    assert await run("override", a.id, "premium") == [
        {"account": a.id, "rule": "premium", "params": {"attempts": 2}}
    ]
    for _ in range(2):
        await authorize(svc, a.id, "0701234567")
    assert await run("run", "--once") == {"processed": 2}
    listed_ = await run("list", "--status", "open", "--account", a.id)
    assert [(f["rule"], f["severity"]) for f in listed_] == [("premium", "warning")]
    fid = str(listed_[0]["id"])
    assert (await run("ack", fid, "--by", "eve", "--reason", "calling them"))["status"] == (
        "acknowledged"
    )
    lifted = await run("lift", fid, "--by", "eve")
    assert lifted["status"] == "lifted" and lifted["account_resumed"] is False
    assert (await run("close", fid, "--by", "eve"))["status"] == "closed"
    with pytest.raises(CliError):
        await run("lift", fid)
    with pytest.raises(CliError):
        await run("ack", "999999999")
    with pytest.raises(CliError):
        await run("override", a.id, "premium", '{"attempts": -1}')
    assert await run("override", a.id, "premium", "--clear") == {"cleared": True}
