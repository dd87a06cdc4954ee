"""ARI session control through the real Asterisk: slices shared by parallel calls, cut when
the shared credit runs out, crash safety (kill -9), websocket loss, suspension mid-call."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from rating.accounts import AccountStatus
from tests.conftest import TEST_REDIS
from tests.e2e.conftest import E2E, ROOT, TollgateProcess
from tests.e2e.proxy import CuttableProxy
from tests.e2e.rig import CallResult, RigConfig, SippCarrier
from tests.e2e.test_fastagi import outcome_lines

MOBILE = "601234567"  # 0.19 PLN/min, per second: 3_166.67 micro-units a second
SLICE_S = 10


@pytest.fixture(scope="module")
def ari_proxy(rig_config: RigConfig) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(rig_config.ari_port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def redis_proxy() -> Iterator[CuttableProxy]:
    """tollgate's way to its Redis in ARI mode: a test can cut it (a Redis outage for
    tollgate alone; the Redis that other tests and helpers share stays up)."""
    url = urlsplit(TEST_REDIS)
    proxy = CuttableProxy(url.port or 6379, url.hostname or "127.0.0.1").start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def ari_mode(
    tollgate: TollgateProcess,
    ari_proxy: CuttableProxy,
    redis_proxy: CuttableProxy,
    rig_config: RigConfig,
) -> Iterator[TollgateProcess]:
    """The session's tollgate, restarted with session control on (short slices)."""
    saved = dict(tollgate.env)
    tollgate.stop()
    url = urlsplit(TEST_REDIS)
    tollgate.env.update(
        {
            "TOLLGATE_REDIS_URL": urlunsplit(
                url._replace(netloc=f"{redis_proxy.host}:{redis_proxy.port}")
            ),
            "TOLLGATE_ARI_URL": f"http://127.0.0.1:{ari_proxy.port}",
            "TOLLGATE_ARI_USER": rig_config.ari_user,
            "TOLLGATE_ARI_PASSWORD": rig_config.ari_password,
            "TOLLGATE_SLICE_S": str(SLICE_S),
            "TOLLGATE_RENEW_BEFORE_S": "3",
        }
    )
    tollgate.start()
    yield tollgate
    tollgate.stop()
    tollgate.env.clear()
    tollgate.env.update(saved)
    tollgate.start()


@pytest.fixture
async def ari(
    e2e: E2E, ari_mode: TollgateProcess, ari_proxy: CuttableProxy, redis_proxy: CuttableProxy
) -> AsyncIterator[E2E]:
    ari_proxy.restore()
    redis_proxy.restore()
    await asyncio.sleep(0.5)  # the controller's websocket is (re)connected
    yield e2e
    ari_proxy.restore()
    redis_proxy.restore()


async def wait_answered(e: E2E, account: str, n: int = 1, wait_s: float = 15) -> list[str]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls = [
            r
            for r in await e.svc.ledger.open_sessions()
            if r.get("account") == account and r.get("answered_at")
        ]
        if len(calls) >= n:
            return [r["call_id"] for r in calls]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{n} answered call(s) of {account} expected")


def reconciliations(e: E2E) -> int:
    """How many times tollgate's controller (re)connected and reconciled (its metrics)."""
    return int(e.metric('tollgate_session_events_total{kind="reconciled"}'))


async def wait_reconciled(e: E2E, more_than: int, wait_s: float = 20) -> int:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(reconciliations, e)
        if count > more_than:
            return count
        await asyncio.sleep(0.2)
    raise AssertionError("the session controller did not reconnect")


def bye_epoch(r: CallResult) -> float:
    assert r.final_time is not None and r.answer_to_bye_s is not None
    return r.final_time + r.answer_to_bye_s


async def test_parallel_calls_share_credit_in_slices_and_are_cut_when_it_runs_out(
    ari: E2E,
) -> None:
    credit = 114_000  # 36 s of mobile calls in total, shared by two calls
    await ari.account("phone-a", balance=credit)
    renewals = 'tollgate_authorize_duration_seconds_count{switch="ari"}'
    renewed_before = await asyncio.to_thread(ari.metric, renewals)
    results = await asyncio.gather(*(ari.call(MOBILE, "phone-a", max_wait_s=90) for _ in range(2)))
    assert all(r.answered and r.bye_from_asterisk for r in results), results
    talks = sorted(r.answer_to_bye_s or 0 for r in results)
    # both renewed past their first slice: neither took the whole credit up front
    assert talks[0] > SLICE_S + 1
    assert sum(talks) <= 36 + 2
    cdrs = await ari.cdrs("phone-a", 2)
    assert sum(int(c["cost"]) for c in cdrs) <= credit
    live = await ari.svc.accounts.live("e2e-a")
    assert live.balance >= 0 and live.reserved == 0
    assert len(ari.new_carrier_calls()) == 2
    # renewals are ARI's authorizations: timed and counted like FastAGI's
    assert await asyncio.to_thread(ari.metric, renewals) >= renewed_before + 2


async def test_kill_9_mid_call_is_cut_at_the_last_grant_and_finished_once(ari: E2E) -> None:
    await ari.account("phone-b", balance=100_000_000)
    call = asyncio.ensure_future(ari.call(MOBILE, "phone-b", max_wait_s=60))
    [call_id] = await wait_answered(ari, "e2e-b")
    await asyncio.sleep(2)
    assert ari.tollgate.proc is not None
    ari.tollgate.proc.send_signal(signal.SIGKILL)
    ari.tollgate.proc.wait(10)
    killed_at = time.time()
    ari.tollgate.proc = None
    result = await call
    assert result.answered and result.bye_from_asterisk
    # cut by Asterisk's own deadline: the first slice (10 s), not the phone's 60 s
    assert result.answer_to_bye_s is not None and result.answer_to_bye_s <= SLICE_S + 1.5
    assert bye_epoch(result) - killed_at <= SLICE_S
    # the hangup handler reported it through the CDR (CDR() writes work after ARI)
    lines = await outcome_lines(ari, 1)
    assert [line for line in lines if line.startswith(f"{call_id}|e2e-b|")], lines
    ari.tollgate.start()  # reconnects, settles the outcome waiting in the outcome log
    [cdr] = await ari.cdrs("phone-b", 1, wait_s=20)
    assert cdr["call_id"] == call_id
    assert abs(int(cdr["billsec"]) - result.answer_to_bye_s) <= 1
    await asyncio.sleep(2)  # any second settlement would show up now
    assert len(await ari.cdrs("phone-b", 2, wait_s=1)) == 1
    live = await ari.svc.accounts.live("e2e-b")
    assert live.balance == 100_000_000 - int(cdr["cost"]) and live.reserved == 0


async def test_websocket_lost_and_restored_mid_call_loses_no_finish(
    ari: E2E, ari_proxy: CuttableProxy
) -> None:
    await ari.account("phone-c", balance=100_000_000)
    call = asyncio.ensure_future(ari.call(MOBILE, "phone-c", hangup_after_ms=6000))
    await wait_answered(ari, "e2e-c")
    await asyncio.sleep(1)
    before = await asyncio.to_thread(reconciliations, ari)
    ari_proxy.cut()
    result = await call  # the phone hangs up while tollgate cannot see Asterisk's events
    await asyncio.sleep(1)
    ari_proxy.restore()
    await wait_reconciled(ari, before)
    assert result.answered and not result.bye_from_asterisk
    [cdr] = await ari.cdrs("phone-c", 1, wait_s=20)
    assert abs(int(cdr["billsec"]) - 6) <= 1
    live = await ari.svc.accounts.live("e2e-c")
    assert live.reserved == 0 and live.balance == 100_000_000 - int(cdr["cost"])


async def test_call_that_ends_during_a_redis_outage_is_billed_once(
    ari: E2E, redis_proxy: CuttableProxy
) -> None:
    """Issue 11 item 2: Redis lost 3 s after the answer, back after the call was cut at the
    end of its slice. The finish is retried (and its line in the outcome log) until settled, the
    controller survives, the call is billed for its talk time exactly once."""
    await ari.account("phone-f", balance=100_000_000)
    call = asyncio.ensure_future(ari.call(MOBILE, "phone-f", max_wait_s=60))
    [call_id] = await wait_answered(ari, "e2e-f")
    await asyncio.sleep(3)
    redis_proxy.cut()
    result = await call
    # the renewal failed: Asterisk cut the call at the end of the paid slice
    assert result.answered and result.bye_from_asterisk
    assert result.answer_to_bye_s is not None and result.answer_to_bye_s <= SLICE_S + 1.5
    await asyncio.sleep(2)
    redis_proxy.restore()
    [cdr] = await ari.cdrs("phone-f", 1, wait_s=60)
    assert (cdr["call_id"], cdr["disposition"]) == (call_id, "ANSWER")
    assert abs(int(cdr["billsec"]) - result.answer_to_bye_s) <= 1.5 and int(cdr["cost"]) > 0
    await asyncio.sleep(3)  # a second settlement would show up now
    assert len(await ari.cdrs("phone-f", 2, wait_s=0)) == 1
    live = await ari.svc.accounts.live("e2e-f")
    assert (live.balance, live.reserved) == (100_000_000 - int(cdr["cost"]), 0)
    deferred = await asyncio.to_thread(
        ari.metric, 'tollgate_session_events_total{kind="finish_deferred"}'
    )
    parked = await asyncio.to_thread(ari.metric, "tollgate_outcome_log_failures_total")
    assert deferred + parked >= 1  # operators saw the outage's finishes wait
    # the controller lived through it: the next call is controlled as usual
    again = await ari.call(MOBILE, "phone-f", hangup_after_ms=2000)
    assert again.answered
    assert len(await ari.cdrs("phone-f", 2, wait_s=20)) == 2


async def test_suspension_hangs_up_running_calls_within_two_seconds(ari: E2E) -> None:
    await ari.account("phone-d", balance=100_000_000)
    call = asyncio.ensure_future(ari.call(MOBILE, "phone-d", max_wait_s=60))
    await wait_answered(ari, "e2e-d")
    await asyncio.sleep(1)
    suspended_at = time.time()
    await ari.svc.accounts.set_status("e2e-d", AccountStatus.SUSPENDED, "abuse investigation")
    result = await call
    assert result.answered and result.bye_from_asterisk
    assert bye_epoch(result) - suspended_at <= 2.0
    [cdr] = await ari.cdrs("phone-d", 1)
    assert cdr["state"] == "finished"


async def test_emergency_calls_are_never_cut(ari: E2E) -> None:
    await ari.account("phone-e", balance=0)
    call = asyncio.ensure_future(ari.call("112", "phone-e", hangup_after_ms=4000))
    await asyncio.sleep(1.5)
    await ari.svc.accounts.set_status("e2e-e", AccountStatus.SUSPENDED, "test")
    result = await call
    assert result.answered and not result.bye_from_asterisk
    assert result.answer_to_bye_s is not None and result.answer_to_bye_s >= 3.5


async def test_operator_lists_and_hangs_up_a_call(ari: E2E) -> None:
    await ari.account("phone-f", balance=100_000_000)
    call = asyncio.ensure_future(ari.call(MOBILE, "phone-f", max_wait_s=60))
    [call_id] = await wait_answered(ari, "e2e-f")
    env = ari.tollgate.env

    def tg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tollgate.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )

    listed = tg("calls", "list", "--account", "e2e-f")
    assert (
        listed.returncode == 0 and call_id in listed.stdout and '"control": "ari"' in listed.stdout
    )
    hung = tg("calls", "hangup", call_id)
    assert hung.returncode == 0, hung.stderr
    result = await call
    assert result.bye_from_asterisk and (result.answer_to_bye_s or 99) < 30
    [cdr] = await ari.cdrs("phone-f", 1)
    assert cdr["state"] == "finished"
    assert os.environ.get("TOLLGATE_ARI_URL") is None  # the test did not leak settings


async def finding(e: E2E, account: str, rule: str, wait_s: float = 20) -> dict[str, object]:
    assert e.svc.pool is not None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        row = await e.svc.pool.fetchrow(
            "select rule, subject, severity, action, suspended, evidence from abuse_findings"
            # the row is stored before the suspension it calls for is recorded on it
            " where account = $1 and rule = $2 and severity = 'critical' and suspended",
            account,
            rule,
        )
        if row is not None:
            return dict(row)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no critical {rule} finding that suspended {account}")


async def test_autodialer_over_sequential_numbers_is_suspended_and_its_calls_cut(
    ari: E2E,
) -> None:
    await ari.account("phone-a", balance=100_000_000)
    running = asyncio.ensure_future(ari.call("221234567", "phone-a", max_wait_s=90))
    await wait_answered(ari, "e2e-a")
    numbers = [f"6012345{n:02d}" for n in range(40)]
    ok, failed = await ari.dialer(numbers, "phone-a", rate=5, hold_ms=1000)
    found = await finding(ari, "e2e-a", "autodialing")
    assert found["suspended"] and found["action"] == "suspend"
    assert (await ari.svc.accounts.get("e2e-a")).status is AccountStatus.SUSPENDED
    # the call that was running when the account was suspended was cut by tollgate
    result = await running
    assert result.answered and result.bye_from_asterisk
    assert result.answer_to_bye_s is not None and result.answer_to_bye_s < 60
    # and the dialler's later attempts were refused (on a loaded machine the detector may
    # act only after the whole first batch: the dialler goes on, as a real one would)
    if failed == 0:
        more = [f"6012346{n:02d}" for n in range(10)]
        _, failed = await ari.dialer(more, "phone-a", rate=5, hold_ms=1000)
    assert ok >= 10 and failed >= 1
    denied = await ari.svc.pool.fetchval(  # type: ignore[union-attr]
        "select count(*) from cdrs where account = 'e2e-a' and reason = 'ACCOUNT_SUSPENDED'"
    )
    assert denied >= 1


async def test_burst_to_international_networks_is_stopped_by_spend_velocity(ari: E2E) -> None:
    from abuse.overrides import set_override

    await ari.account("phone-b", balance=200_000_000, allow_high_risk=True)
    assert ari.svc.pool is not None
    # This account's threshold: 3.00 an hour (critical at 3x: 9.00); the burst-count rule
    # is set out of the way so that spend velocity is what stops it.
    await set_override(
        ari.svc.pool,
        "e2e-b",
        "revenue_share",
        {"spend_floor": 3_000_000, "burst_calls": 1000, "burst_critical": 1000},
    )
    numbers = [f"+8821345678{n}" for n in range(10)]
    _, failed = await ari.dialer(numbers, "phone-b", rate=1, hold_ms=5000)
    found = await finding(ari, "e2e-b", "revenue_share")
    assert found["subject"] == "spend_velocity" and found["suspended"]
    assert failed >= 1  # later calls of the burst were refused or cut
    spent = 200_000_000 - (await ari.svc.accounts.live("e2e-b")).balance
    assert 0 < spent < 10 * 10_490_000  # far less than the burst would have cost


async def test_a_carrier_failing_with_503_moves_the_stasis_call_to_the_next(ari: E2E) -> None:
    """Least-cost routing under session control: the cheaper carrier answers 503, the
    controller moves the call's place to the next carrier and dials it within the same call
    (the phone hears one call); the CDR records both attempts with their times."""
    from tests.e2e.test_carriers_e2e import _carrier

    await ari.account("phone-d", balance=20_000_000)
    await _carrier(ari, "down", "carrier-b", "4822,Warsaw,0,0.0100,60,1,0,*\n")
    await _carrier(ari, "up", "carrier", "48,Poland,0,0.0300,60,1,0,*\n")
    keys = ari.svc.settings.keyspace
    with SippCarrier(ari.config.carrier_port, ip="127.0.0.11", scenario="uas_503.xml") as down:
        call = asyncio.ensure_future(ari.call("221234567", "phone-d", hangup_after_ms=3000))
        await wait_answered(ari, "e2e-d")
        # the place moved with the call: none left on the carrier that failed
        held = [await ari.svc.redis.zcard(keys.carrier_open(c)) for c in ("down", "up")]
        result = await call
        refused = down.numbers()
    assert result.status == 200 and result.answered
    assert held == [0, 1]
    assert refused == ["+48221234567"]  # tried first, answered 503
    assert ari.new_carrier_calls() == ["+48221234567"]  # then the next one, which answered
    [cdr] = await ari.cdrs("phone-d", 1)
    assert (cdr["decision"], cdr["disposition"]) == ("ALLOW", "ANSWER")
    assert ari.svc.pool is not None
    row = await ari.svc.pool.fetchrow(
        "select routes, carrier, attempts, carrier_timing, buy_deck from cdrs"
        " where call_id = $1",
        cdr["call_id"],
    )
    assert row is not None
    assert (row["routes"], row["carrier"], row["buy_deck"]) == ("down,up", "up", "buy-up")
    # down:503:<start ms>:<pdd ms, empty: it never rang>; then up's start and PDD
    match = re.fullmatch(r"down:503:(\d{13}):(\d*);", row["attempts"])
    assert match is not None, row["attempts"]
    start, pdd = (int(x) for x in row["carrier_timing"].split(":"))
    assert int(match[1]) <= start and 0 <= pdd < 5000
    assert [await ari.svc.redis.zcard(keys.carrier_open(c)) for c in ("down", "up")] == [0, 0]
    failovers = 'tollgate_session_events_total{kind="failover"}'
    assert await asyncio.to_thread(ari.metric, failovers) >= 1
    pdds = 'tollgate_carrier_pdd_seconds_count{trunk="carrier"}'
    assert await asyncio.to_thread(ari.metric, pdds) >= 1
