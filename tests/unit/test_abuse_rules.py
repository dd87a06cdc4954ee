"""Each abuse rule on hand-built event sequences.

A rule's windows are Redis state by design, so the rules run through their real Lua script
on the real Redis (own key prefix, no PostgreSQL, no streams). `business_day` builds a
normal office day as ledger-shaped stream entries; the integration tests replay it too."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from abuse.detectors import DETECTORS
from abuse.detectors.base import Scope
from abuse.events import BadEvent, CallEvent, InboundEvent
from abuse.params import BadParams, RuleParams
from abuse.settings import AbuseSettings, Action
from abuse.signals import Severity, Signal
from abuse.window import AccountKeys, Plan, bind, part, script_text
from rating.keys import Keyspace
from runtime.settings import SettingsError
from tests.conftest import TEST_REDIS, drop_prefix

T0 = int(datetime(2026, 3, 10, 9, 0, tzinfo=UTC).timestamp() * 1000)  # a Tuesday, 09:00 UTC
S = 1000
MIN = 60 * S
HOUR = 60 * MIN


# -- building events -----------------------------------------------------------------------------


def call(
    n: int,
    at_ms: int,
    to: str = "+48601000000",
    cls: str = "mobile",
    *,
    billsec: int = 60,
    answered: bool | None = None,
    state: str = "finished",
    reason: str = "OK",
    caller: str = "+48221110000",
    cost: int = 0,
    forwarded: bool = False,
    account: str = "acme",
) -> CallEvent:
    answered = billsec > 0 if answered is None else answered
    return CallEvent(
        call_id=f"c{n}",
        account=account,
        state=state,
        reason=reason,
        e164=to,
        number_class=cls,
        caller=caller,
        at_ms=at_ms,
        end_ms=at_ms + (billsec if answered else 0) * S + 5 * S,
        billsec=billsec if answered else 0,
        answered=answered,
        cost=cost,
        emergency=cls == "emergency",
        forwarded=forwarded,
    )


def denied(n: int, at_ms: int, reason: str, to: str, cls: str) -> CallEvent:
    return call(n, at_ms, to, cls, billsec=0, answered=False, state="denied", reason=reason)


def inbound(
    n: int, at_ms: int, caller: str, duration_s: int, account: str = "acme"
) -> InboundEvent:
    return InboundEvent(f"{at_ms}-{n}", account, caller, duration_s, at_ms)


# -- running the rules ---------------------------------------------------------------------------


@dataclass
class Rig:
    redis: Redis
    keys: Keyspace
    params: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.script = self.redis.register_script(script_text())

    async def feed(
        self, events: Sequence[CallEvent | InboundEvent], only: str | None = None
    ) -> list[Signal]:
        out: list[Signal] = []
        for ev in events:
            keys = AccountKeys(self.keys, ev.account)
            event_id = f"in:{ev.id}" if isinstance(ev, InboundEvent) else ev.call_id
            plan = Plan(keys("seen"), event_id, ev.at_ms, 2 * 86400 * S)
            scope = Scope(ev.account, keys, "PL")
            checks = []
            for name, d in DETECTORS.items():
                if only and name != only:
                    continue
                p = d.defaults().merged(self.params.get(name, {}), name)
                if not p.enabled:
                    continue
                if isinstance(ev, InboundEvent):
                    check = d.on_inbound(ev, p, plan, scope)
                else:
                    if not ev.counted:
                        continue
                    check = d.on_call(ev, p, plan, scope)
                if check is not None:
                    checks.append(check)
            if plan:
                keys_, argv = plan.command()
                bind([plan], await self.script(keys=keys_, args=argv))
                out += [s for c in checks for s in c()]
        return out


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    redis = Redis.from_url(TEST_REDIS)
    keys = Keyspace(f"tgu{uuid.uuid4().hex[:10]}", 4)
    try:
        yield Rig(redis, keys)
    finally:
        await drop_prefix(redis, keys.prefix)
        await redis.aclose()


def strongest(signals: Sequence[Signal], rule: str, subject: str | None = None) -> Signal | None:
    found = [s for s in signals if s.rule == rule and (subject is None or s.subject == subject)]
    return max(reversed(found), key=lambda s: s.severity.rank, default=None)  # the latest


def first(signals: Sequence[Signal], rule: str, subject: str | None = None) -> Signal | None:
    return next(
        (s for s in signals if s.rule == rule and (subject is None or s.subject == subject)), None
    )


def mobile(i: int) -> str:
    return f"+4860{(1_234_567 + i * 7919) % 10_000_000:07d}"


# -- thresholds, settings, events ------------------------------------------------------------------


def test_thresholds_merge_typed_values_and_name_bad_ones() -> None:
    p = DETECTORS["autodialing"].defaults()
    q = p.merged({"per_minute": 20, "low_asr": 1, "enabled": False})
    assert (q.as_dict()["per_minute"], q.as_dict()["low_asr"], q.enabled) == (20, 1.0, False)
    with pytest.raises(BadParams) as bad:
        p.merged({"per_minuet": 3}, "autodialing")
    assert bad.value.field == "per_minuet"
    for value in ("5", -1, True, 2.5):
        with pytest.raises(BadParams):
            p.merged({"per_minute": value})
    r = DETECTORS["revenue_share"].defaults().merged({"ranges": ["979", "4470"]})
    assert r.as_dict()["ranges"] == ["979", "4470"]
    assert isinstance(RuleParams.from_dict({"enabled": False}), RuleParams)


def test_settings_from_env() -> None:
    s = AbuseSettings.from_env(
        {
            "TOLLGATE_ABUSE_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "TOLLGATE_ABUSE_ACTIONS": "warning=record,critical=alert",
            "TOLLGATE_ABUSE_RULES": '{"premium": {"attempts": 5}}',
            "TOLLGATE_ABUSE_BATCH_SIZE": "50",
            "PATH": "/usr/bin",
        }
    )
    assert s.webhook_url == "http://127.0.0.1:9/hook" and s.batch_size == 50
    assert s.action_for(Severity.WARNING) is Action.RECORD
    assert s.action_for(Severity.CRITICAL) is Action.ALERT
    assert s.action_for(Severity.INFO) is Action.RECORD
    assert s.params("premium").as_dict()["attempts"] == 5
    assert s.params("autodialing") == DETECTORS["autodialing"].defaults()
    bad = (
        {"TOLLGATE_ABUSE_RULES": '{"premium": {"atempts": 5}}'},
        {"TOLLGATE_ABUSE_RULES": '{"nope": {}}'},
        {"TOLLGATE_ABUSE_RULES": "{not json"},
        {"TOLLGATE_ABUSE_ACTIONS": "warning=shout"},
        {"TOLLGATE_ABUSE_BATCH_SIZE": "many"},
        {"TOLLGATE_ABUSE_COLOUR": "red"},
    )
    for env in bad:
        with pytest.raises(SettingsError):
            AbuseSettings.from_env(env)


def test_call_events_from_ledger_fields() -> None:
    fields = ledger_entry("acme", "c1", T0, "+48601234567", "mobile", 42, caller="+48221110000")
    ev = CallEvent.from_fields(fields)
    assert (ev.account, ev.at_ms, ev.billsec, ev.answered, ev.placed) == (
        "acme",
        T0,
        42,
        True,
        True,
    )
    assert ev.counted and not ev.forwarded and ev.digits == "48601234567"
    assert CallEvent.from_fields({**fields, "rdnis": "+48221110001"}).forwarded
    assert CallEvent.from_fields({**fields, "forwarded": "1"}).forwarded
    assert not CallEvent.from_fields({**fields, "forwarded": "0"}).forwarded
    emergency = {**fields, "class": "emergency", "e164": "112", "emergency": "1"}
    assert not CallEvent.from_fields(emergency).counted
    assert not CallEvent.from_fields({**fields, "reason": "ACCOUNT_SUSPENDED"}).counted
    # a call the ledger never authorized: its attempt time is its end minus its duration
    unauth = {k: v for k, v in fields.items() if k != "authorized_at"}
    assert CallEvent.from_fields(unauth).at_ms == int(fields["ended_at"]) - 42 * S
    for broken in ({**fields, "billsec": "x"}, {**fields, "account": ""}):
        with pytest.raises(BadEvent):
            CallEvent.from_fields(broken)
    ie = InboundEvent.from_fields(
        "1-0", {"account": "acme", "caller": "+2327", "duration": "2", "ts": str(T0)}
    )
    assert (ie.duration_s, ie.at_ms) == (2, T0)
    with pytest.raises(BadEvent):
        InboundEvent.from_fields("1-1", {"account": "acme", "duration": "2"})


def test_key_parts_from_caller_ids_stay_tame() -> None:
    assert part("+48221110000") == "+48221110000"
    hashed = part("evil{s1}:x y")
    assert hashed.startswith("h") and "{" not in hashed and len(hashed) == 9


# -- autodialing -----------------------------------------------------------------------------------


async def test_autodial_rate_with_low_asr_and_short_calls(rig: Rig) -> None:
    # 6 attempts in a minute, 2 answered for 8 s: an autodialer's minute
    events = [call(i, T0 + i * 8 * S, mobile(i), billsec=8 if i % 3 == 0 else 0) for i in range(6)]
    signals = await rig.feed(events, "autodialing")
    s = strongest(signals, "autodialing", "rate")
    assert s is not None and s.severity is Severity.WARNING
    assert s.figures["attempts_1m"] == 6 and s.figures["asr_window"] < 0.6
    more = [call(10 + i, T0 + 50 * S + i * 600, mobile(10 + i), billsec=0) for i in range(10)]
    s = strongest(await rig.feed(more, "autodialing"), "autodialing", "rate")
    assert s is not None and s.severity is Severity.CRITICAL  # 15 attempts in a minute
    assert s.lookup is not None


async def test_autodial_rate_needs_low_asr_and_short_duration(rig: Rig) -> None:
    # same pace, but people answer and talk: a busy human, not a machine
    talk = [call(i, T0 + i * 8 * S, mobile(i), billsec=95 + i) for i in range(8)]
    assert strongest(await rig.feed(talk, "autodialing"), "autodialing", "rate") is None
    # low ASR but long conversations when answered: a sales team
    later = T0 + 2 * HOUR
    sales = [
        call(100 + i, later + i * 20 * S, mobile(100 + i), billsec=240 if i % 3 == 0 else 0)
        for i in range(25)
    ]
    assert strongest(await rig.feed(sales, "autodialing"), "autodialing", "rate") is None


async def test_autodial_six_hour_volume(rig: Rig) -> None:
    # 20 attempts spread over 5 hours, 1 in 4 answered for 10 s
    events = [
        call(i, T0 + i * 15 * MIN, mobile(i), billsec=10 if i % 4 == 0 else 0) for i in range(20)
    ]
    signals = await rig.feed(events, "autodialing")
    rate = [s for s in signals if s.subject == "rate"]
    assert len(rate) == 1 and rate[0].figures["attempts_window"] == 20  # fires at the 20th


async def test_short_call_ratio_over_a_hundred_calls(rig: Rig) -> None:
    # 100 answered calls over 20 h, every 5th one <= 6 s: 20 % short
    events = [
        call(i, T0 + i * 12 * MIN, mobile(i), billsec=4 if i % 5 == 0 else 180) for i in range(100)
    ]
    signals = await rig.feed(events, "autodialing")
    s = strongest(signals, "autodialing", "short_calls")
    assert s is not None and s.severity is Severity.WARNING
    assert s.figures["answered"] == 100 and s.figures["short_ratio"] == 0.2
    assert all(x.figures["answered"] >= 100 for x in signals if x.subject == "short_calls")


async def test_short_calls_under_the_ratio_raise_nothing(rig: Rig) -> None:
    events = [
        call(i, T0 + i * 12 * MIN, mobile(i), billsec=4 if i % 10 == 0 else 180) for i in range(120)
    ]
    assert await rig.feed(events, "autodialing") == []


async def test_low_asr_alone_is_information(rig: Rig) -> None:
    events = [
        call(i, T0 + i * 10 * MIN, mobile(i), billsec=200 if i % 5 < 2 else 0) for i in range(120)
    ]
    signals = await rig.feed(events, "autodialing")
    assert {s.subject for s in signals} == {"low_asr"}
    assert all(s.severity is Severity.INFO for s in signals)
    assert signals[0].figures["asr"] == 0.4 and signals[0].figures["asr_upper"] < 0.6


async def test_low_asr_by_chance_is_not_low(rig: Rig) -> None:
    # 59 % answered over 120 calls: under 60 %, but well within chance for a 70 % business
    events = [
        call(i, T0 + i * 5 * MIN, mobile(i), billsec=200 if i * 41 % 100 < 59 else 0)
        for i in range(120)
    ]
    assert await rig.feed(events, "autodialing") == []


async def test_sequential_numbers_in_any_order(rig: Rig) -> None:
    base = 48_221_234_500
    order = [3, 1, 4, 0, 2]  # the CDRs of a parallel dialler end out of order
    events = [call(i, T0 + i * MIN, f"+{base + k}", "geographic") for i, k in enumerate(order)]
    signals = await rig.feed(events, "autodialing")
    s = strongest(signals, "autodialing", "sequential")
    assert s is not None and s.severity is Severity.WARNING
    assert s.figures == {"run": 5, "first": f"+{base}"}
    assert sorted(s.call_ids) == [f"c{i}" for i in range(5)]
    rest = [call(10 + k, T0 + (10 + k) * MIN, f"+{base + k}", "geographic") for k in range(5, 10)]
    s = strongest(await rig.feed(rest, "autodialing"), "autodialing", "sequential")
    assert s is not None and s.severity is Severity.CRITICAL and s.figures["run"] == 10


async def test_redials_and_gaps_are_not_sequences(rig: Rig) -> None:
    base = 48_221_234_500
    numbers = [0, 1, 1, 1, 2, 3, 5, 6, 7, 9]  # redials do not extend a run, gaps break it
    events = [call(i, T0 + i * MIN, f"+{base + k}", "geographic") for i, k in enumerate(numbers)]
    assert strongest(await rig.feed(events, "autodialing"), "autodialing", "sequential") is None


# -- broadcasting ----------------------------------------------------------------------------------


def robocalls(n: int, start: int, durations: Sequence[int], caller: str) -> list[CallEvent]:
    return [
        call(
            start + i,
            T0 + i * 40 * S,
            mobile(start + i),
            billsec=durations[i % len(durations)],
            answered=i % 5 < 2,
            caller=caller,
        )
        for i in range(n)
    ]


async def test_broadcast_many_destinations_short_uniform_low_asr(rig: Rig) -> None:
    signals = await rig.feed(robocalls(40, 0, [19, 21, 20, 22, 18], "+48225550000"), "broadcasting")
    s = first(signals, "broadcasting")
    assert s is not None and s.severity is Severity.WARNING and s.subject == "+48225550000"
    assert s.figures["distinct"] == 30 and s.figures["asr"] == 0.4
    assert s.figures["cv_billsec"] < 0.35


async def test_broadcast_needs_uniform_durations_and_low_asr(rig: Rig) -> None:
    varied = await rig.feed(robocalls(40, 0, [5, 60, 12, 30, 2], "+48225550001"), "broadcasting")
    assert varied == []
    answered = [
        call(100 + i, T0 + i * 40 * S, mobile(100 + i), billsec=20, caller="+48225550002")
        for i in range(40)
    ]
    assert await rig.feed(answered, "broadcasting") == []


# -- forwarding ------------------------------------------------------------------------------------


async def test_forwarded_legs_per_hour(rig: Rig) -> None:
    legs = [call(i, T0 + i * 2 * MIN, mobile(i), forwarded=True) for i in range(25)]
    plain = [call(100 + i, T0 + i * MIN, mobile(100 + i)) for i in range(25)]
    signals = await rig.feed(plain + legs, "forwarding")
    s = strongest(signals, "forwarding", "legs")
    assert s is not None and s.severity is Severity.WARNING and s.figures["forwarded_legs"] == 25


async def test_forwarding_abroad(rig: Rig) -> None:
    legs = [
        call(i, T0 + i * 5 * MIN, f"+4930123456{i}", "international", forwarded=True)
        for i in range(3)
    ]
    s = strongest(await rig.feed(legs, "forwarding"), "forwarding", "risky")
    assert s is not None and s.severity is Severity.WARNING and s.figures["risky_legs"] == 3


# -- revenue share ---------------------------------------------------------------------------------


async def test_high_risk_burst_counts_refusals(rig: Rig) -> None:
    events = [
        denied(i, T0 + i * MIN, "DESTINATION_BLOCKED", f"+88213000{i:03d}", "high_risk")
        for i in range(3)
    ]
    s = strongest(await rig.feed(events, "revenue_share"), "revenue_share", "high_risk_burst")
    assert s is not None and s.severity is Severity.WARNING
    more = [
        call(10 + i, T0 + (10 + i) * MIN, f"+97912345{i:03d}", "international", billsec=30)
        for i in range(7)
    ]  # +979 is in the default ranges
    s = strongest(await rig.feed(more, "revenue_share"), "revenue_share", "high_risk_burst")
    assert s is not None and s.severity is Severity.CRITICAL and s.figures["high_risk_calls"] == 10


async def test_parallel_long_international_calls(rig: Rig) -> None:
    # four 30-minute calls to Germany that run side by side
    events = [
        call(i, T0 + i * MIN, f"+49301234{i:04d}", "international", billsec=1800) for i in range(4)
    ]
    s = strongest(await rig.feed(events, "revenue_share"), "revenue_share", "parallel_long")
    assert s is not None and s.severity is Severity.WARNING and s.figures["parallel"] == 4
    # the same four calls one after the other are just a long day on the phone
    serial = [
        call(
            10 + i,
            T0 + i * 40 * MIN,
            f"+49301235{i:04d}",
            "international",
            billsec=1800,
            account="other",
        )
        for i in range(4)
    ]
    assert (
        strongest(await rig.feed(serial, "revenue_share"), "revenue_share", "parallel_long") is None
    )


async def test_spend_velocity_floor_covers_new_accounts(rig: Rig) -> None:
    # 12 calls of 10.00 in an hour: 120.00 > the 100.00 floor of an account without history
    events = [call(i, T0 + i * 5 * MIN, mobile(i), billsec=300, cost=10_000_000) for i in range(12)]
    signals = await rig.feed(events, "revenue_share")
    s = first(signals, "revenue_share", "spend_velocity")
    assert s is not None and s.severity is Severity.WARNING
    assert s.figures["spent_window"] == 100_000_000 and s.figures["baseline_per_hour"] == 0


async def test_spend_velocity_against_own_history(rig: Rig) -> None:
    # a week of 2.00 an hour (seven whole days), then 25.00 within one hour
    midnight = T0 - 9 * HOUR
    history = [
        call(i, midnight + i * HOUR, mobile(i), billsec=600, cost=2_000_000) for i in range(168)
    ]
    assert await rig.feed(history, "revenue_share") == []
    rig.params["revenue_share"] = {"spend_floor": 1_000_000}  # 1.00 an hour
    now = midnight + 168 * HOUR + 30 * MIN
    burst = [
        call(
            1000 + i,
            now + i * 4 * MIN,
            f"+4930123{i:05d}",
            "international",
            billsec=60,
            cost=5_000_000,
        )
        for i in range(5)
    ]
    signals = await rig.feed(burst, "revenue_share")
    s = first(signals, "revenue_share", "spend_velocity")
    assert s is not None and s.severity is Severity.WARNING
    assert s.figures["baseline_per_hour"] == 2_000_000 and s.figures["threshold"] == 20_000_000


# -- wangiri ---------------------------------------------------------------------------------------


async def test_wangiri_inbound_bait_then_callbacks(rig: Rig) -> None:
    bait = [inbound(i, T0 + i * MIN, f"+2327612{i:04d}", 1) for i in range(5)]
    signals = await rig.feed(bait, "wangiri")
    s = strongest(signals, "wangiri")
    assert s is not None and s.severity is Severity.INFO and s.subject == "+2327612"
    later = T0 + 2 * HOUR
    back = [
        call(i, later + i * MIN, f"+2327612{i:04d}", "international", billsec=90) for i in range(3)
    ]
    signals = await rig.feed(back, "wangiri")
    assert [s.severity for s in signals] == [Severity.WARNING, Severity.WARNING, Severity.CRITICAL]
    assert signals[-1].figures == {"short_inbound": 5, "callbacks": 3}


async def test_wangiri_ignores_domestic_long_and_unbaited(rig: Rig) -> None:
    home = [inbound(i, T0 + i * MIN, f"+4822123{i:04d}", 1) for i in range(6)]
    long_ = [inbound(10 + i, T0 + i * MIN, f"+2327613{i:04d}", 60) for i in range(6)]
    junk = [inbound(20 + i, T0 + i * MIN, "anonymous", 0) for i in range(6)]
    calls = [call(i, T0 + HOUR + i * MIN, f"+2327613{i:04d}", "international") for i in range(3)]
    assert await rig.feed([*home, *long_, *junk, *calls], "wangiri") == []


# -- premium ---------------------------------------------------------------------------------------


async def test_repeated_premium_denials(rig: Rig) -> None:
    events = [
        denied(i, T0 + i * 10 * MIN, "PREMIUM_BLOCKED", "+48701234567", "premium")
        for i in range(10)
    ]
    signals = await rig.feed(events, "premium")
    assert [s.severity for s in signals] == [Severity.WARNING] * 7 + [Severity.CRITICAL]
    assert signals[0].figures == {"premium_denials": 3}


async def test_override_changes_the_outcome(rig: Rig) -> None:
    rig.params["premium"] = {"attempts": 5, "critical": 0}
    events = [
        denied(i, T0 + i * MIN, "PREMIUM_BLOCKED", "+48701234567", "premium") for i in range(10)
    ]
    signals = await rig.feed(events, "premium")
    assert [s.severity for s in signals] == [Severity.WARNING] * 6
    rig.params["premium"] = {"enabled": False}
    more = [
        denied(
            20 + i,
            T0 + i * MIN,
            "PREMIUM_BLOCKED",
            "+48701234567",
            "premium",
        )
        for i in range(10)
    ]
    assert await rig.feed(more, "premium") == []


# -- the window engine ---------------------------------------------------------------------------


async def test_an_event_seen_again_is_not_counted_again(rig: Rig) -> None:
    events = [
        denied(i, T0 + i * MIN, "PREMIUM_BLOCKED", "+48701234567", "premium") for i in range(3)
    ]
    first_pass = await rig.feed(events, "premium")
    again = await rig.feed(events, "premium")  # re-delivered after a crash
    assert [s.figures for s in again] == [s.figures for s in first_pass]
    assert again[0].figures == {"premium_denials": 3}


async def test_running_sums_restart_when_their_window_expired(rig: Rig) -> None:
    keys = AccountKeys(rig.keys, "acme")

    async def agg(n: int, at: int) -> list[int]:
        plan = Plan(keys("seen"), f"e{n}", at, 86400 * S)
        slot = plan.agg(keys("w"), keys("sums"), f"c{n}", (5,), at, HOUR)
        k, a = plan.command()
        bind([plan], await rig.script(keys=k, args=a))
        return slot.value

    assert await agg(1, T0) == [1, 5]
    assert await agg(2, T0 + MIN) == [2, 10]
    assert await agg(2, T0 + MIN) == [2, 10]  # seen: not added twice
    await rig.redis.delete(keys("w"))  # its TTL ran out while the shared sums lived on
    assert await agg(3, T0 + 2 * MIN) == [1, 5]
    assert await agg(4, T0 + 2 * HOUR) == [1, 5]  # the earlier call slid out of the window


async def test_emergency_calls_are_never_counted(rig: Rig) -> None:
    events = [call(i, T0 + i * 5 * S, "112", "emergency", billsec=3) for i in range(50)]
    assert await rig.feed(events) == []


async def test_windows_slide(rig: Rig) -> None:
    # two premium denials a day apart never make three within a day
    events = [
        denied(i, T0 + i * 13 * HOUR, "PREMIUM_BLOCKED", "+48701234567", "premium")
        for i in range(6)
    ]
    assert await rig.feed(events, "premium") == []


async def test_a_normal_business_day_raises_nothing(rig: Rig) -> None:
    cdrs, calls_in = business_day(date(2026, 3, 10))
    assert len(cdrs) > 800
    events: list[CallEvent | InboundEvent] = [CallEvent.from_fields(f) for f in cdrs]
    events += [InboundEvent.from_fields(f"{f['ts']}-0", f) for f in calls_in]
    events.sort(key=lambda e: e.at_ms)
    assert await rig.feed(events) == []


def test_business_day_is_busy_enough() -> None:
    """The no-false-positive day must exercise the rules' first conditions."""
    cdrs, calls_in = business_day(date(2026, 3, 10))
    per_account = {e["account"] for e in cdrs}
    assert per_account == {"office", "sales", "shop"}
    answered = [e for e in cdrs if e["answered"] == "1"]
    assert 0.7 < len(answered) / len(cdrs) < 0.82
    assert any(0 < int(e["billsec"]) <= 6 for e in answered)
    assert sum(1 for e in cdrs if e["class"] == "international") > 50
    assert any("rdnis" in e for e in cdrs) and len(calls_in) > 200


# -- a normal business day -------------------------------------------------------------------------


def ledger_entry(
    account: str,
    call_id: str,
    at_ms: int,
    to: str,
    cls: str,
    billsec: int,
    *,
    caller: str = "",
    answered: bool | None = None,
    state: str = "finished",
    reason: str = "OK",
    cost: int = 0,
    disposition: str = "",
    **extra: str,
) -> dict[str, str]:
    """A stream entry shaped like the ledger's (finish.lua / authorize.lua)."""
    answered = billsec > 0 if answered is None else answered
    ring = 8_000
    answered_at = at_ms + ring if answered else 0
    ended = (answered_at + billsec * 1000) if answered else at_ms + ring + 12_000
    if state == "denied":
        ended, disposition = at_ms, "DENIED"
    return {
        "call_id": call_id,
        "account": account,
        "state": state,
        "decision": "DENY" if state == "denied" else "ALLOW",
        "reason": reason,
        "detail": "",
        "granted": "0" if state == "denied" else "3600",
        "reserved": "0",
        "raw": to,
        "e164": to,
        "class": cls,
        "caller": caller,
        "switch": "test",
        "prefix": to[1:4],
        "rate_name": "",
        "deck": "retail",
        "deck_version": "1",
        "currency": "PLN",
        "authorized_at": str(at_ms),
        "answered_at": str(answered_at) if answered else "",
        "ended_at": str(ended),
        "billsec": str(billsec if answered else 0),
        "answered": "1" if answered else "0",
        "rated_cost": str(cost),
        "cost": str(cost),
        "disposition": disposition or ("ANSWER" if answered else "NOANSWER"),
        "hangup_cause": "16",
        "prior_state": "open",
        **extra,
    }


MOBILE = ("50", "51", "53", "60", "66", "69", "72", "78", "79", "88")
# where an office calls: (share, class, number maker, price per minute in micro-units)
DESTINATIONS = (
    (0.42, "mobile", lambda r: f"+48{r.choice(MOBILE)}{r.randrange(10**7):07d}", 190_000),
    (
        0.28,
        "geographic",
        lambda r: f"+48{r.choice(['22', '12', '61'])}{r.randrange(10**7):07d}",
        90_000,
    ),
    (0.08, "toll_free", lambda r: f"+48800{r.randrange(10**6):06d}", 0),
    (0.05, "voip", lambda r: f"+4839{r.randrange(10**7):07d}", 50_000),
    (
        0.17,
        "international",
        lambda r: r.choice(
            [
                f"+4930{r.randrange(10**8):08d}",
                f"+4420{r.randrange(10**8):08d}",
                f"+1212{r.randrange(10**7):07d}",
            ]
        ),
        250_000,
    ),
)


def destination(r: random.Random) -> tuple[str, str, int]:
    pick = r.random()
    for share, cls, make, price in DESTINATIONS:
        pick -= share
        if pick <= 0:
            return make(r), cls, price
    _, cls, make, price = DESTINATIONS[-1]
    return make(r), cls, price


def business_day(
    day: date, accounts: Sequence[str] = ("office", "sales", "shop"), seed: int = 7
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A normal working day: CDR entries (ordered as the ledger writes them, by end) and
    inbound-call entries. 08:00-18:00 Warsaw time, mixed destinations, conversations of a
    minute or three (some of half an hour, a few short), ASR ~75 %, redials, a mistaken
    premium number, a few forwarded legs, inbound calls mostly from Poland."""
    r = random.Random(seed)
    opening = datetime(day.year, day.month, day.day, 7, 0, tzinfo=UTC)  # 08:00 CET
    staff = {accounts[0]: 12, accounts[1]: 8, accounts[2]: 2}
    per_person = {accounts[0]: 30, accounts[1]: 55, accounts[2]: 20}
    cdrs: list[dict[str, str]] = []
    calls_in: list[dict[str, str]] = []
    n = 0
    for account in accounts:
        main = f"+4822{r.randrange(10**7):07d}"
        for _ in range(staff[account]):
            did = main if account == accounts[0] else f"+4822{r.randrange(10**7):07d}"
            last: tuple[str, str, int] | None = None
            for _ in range(per_person[account]):
                n += 1
                at = opening + timedelta(seconds=r.uniform(0, 10 * 3600))
                at_ms = int(at.timestamp() * 1000)
                if last is not None and r.random() < 0.08:
                    to, cls, price = last  # a redial
                else:
                    to, cls, price = destination(r)
                last = (to, cls, price)
                answered = r.random() < 0.76
                billsec = 0
                if answered:
                    billsec = (
                        r.randint(2, 6)
                        if r.random() < 0.05
                        else min(3000, max(7, int(r.lognormvariate(4.6, 0.9))))
                    )
                cost = (billsec * price + 59) // 60
                extra = {}
                if account == accounts[0] and r.random() < 0.01:
                    extra["rdnis"] = did  # a colleague's line forwarded to a mobile
                cdrs.append(
                    ledger_entry(
                        account,
                        f"bd-{n}",
                        at_ms,
                        to,
                        cls,
                        billsec,
                        caller=did,
                        answered=answered,
                        cost=cost,
                        **extra,
                    )
                )
        # a mistaken premium number, refused
        at_ms = int((opening + timedelta(hours=r.uniform(1, 9))).timestamp() * 1000)
        n += 1
        cdrs.append(
            ledger_entry(
                account,
                f"bd-{n}",
                at_ms,
                "+48701234567",
                "premium",
                0,
                caller=main,
                state="denied",
                reason="PREMIUM_BLOCKED",
            )
        )
        for _ in range(staff[account] * 12):
            at = opening + timedelta(seconds=r.uniform(0, 10 * 3600))
            foreign = r.random() < 0.05
            caller = (
                f"+{r.choice(['4930', '4420', '33'])}{r.randrange(10**8):08d}"
                if foreign
                else f"+48{r.choice(['22', '60', '51'])}{r.randrange(10**7):07d}"
            )
            duration = r.randint(1, 4) if r.random() < 0.08 else r.randint(20, 600)
            calls_in.append(
                {
                    "account": account,
                    "caller": caller,
                    "duration": str(duration),
                    "ts": str(int(at.timestamp() * 1000)),
                }
            )
    cdrs.sort(key=lambda e: int(e["ended_at"]))
    calls_in.sort(key=lambda e: int(e["ts"]))
    return cdrs, calls_in
