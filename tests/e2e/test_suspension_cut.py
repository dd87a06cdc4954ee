"""A suspension decided off the call path ends the running calls: the scheduler's warning
deadline suspends an account whose FastAGI call is up, and the same tick's `cut_calls` job
hangs it up through Asterisk's ARI within seconds (not at the end of its grant); the CDR is
the call as far as it went. The account's emergency call goes on. Where the scheduler has
no ARI (docker-compose.yml), tollgate serve's sweeper, holding the switch's ARI, does it:
an operator's suspension ends the call within a sweep or two."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

from rating.accounts import AccountStatus
from switch.ari import AriClient, AriSettings
from tests.e2e.conftest import E2E
from tests.e2e.rig import RigConfig
from tollgate.metrics import Metrics
from tollgate.scheduler import (
    SchedulerMetrics,
    SchedulerSettings,
    job_abuse_deadlines,
    job_cut_calls,
    tick,
)
from tollgate.serve import sweep_forever

PLN = 1_000_000
MOBILE = "601234567"  # retail deck: 0.19 PLN/min, billed per second


async def open_calls(e: E2E, account: str, count: int, wait_s: float = 20) -> list[dict[str, str]]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls = [r for r in await e.svc.ledger.open_sessions() if r["account"] == account]
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.1)
    seen = [(r.get("account"), r.get("e164")) for r in await e.svc.ledger.open_sessions()]
    raise AssertionError(f"not {count} open calls of {account}: {seen}")


async def warned_past_deadline(e: E2E, account: str, now: datetime) -> int:
    """A finding as the warning step leaves it: warned, deadline passed, seen again after."""
    assert e.svc.pool is not None
    found = await e.svc.pool.fetchval(
        "insert into abuse_findings (account, rule, window_key, severity, action, evidence,"
        " warned_at, deadline_at, last_seen_at, created_at)"
        " values ($1, 'broadcasting', 'e2e', 'warning', 'warn', '{}', $2, $3, $4, $2)"
        " returning id",
        account,
        now - timedelta(hours=3),
        now - timedelta(hours=1),
        now - timedelta(minutes=10),
    )
    return int(found)


async def test_a_deadline_suspension_hangs_up_the_running_call_not_the_emergency_one(
    e2e: E2E, rig_config: RigConfig
) -> None:
    account = await e2e.account("phone-e", balance=100 * PLN)
    normal = asyncio.ensure_future(e2e.call(MOBILE, "phone-e", max_wait_s=90))
    [record] = await open_calls(e2e, account.id, 1)
    call_id = record["call_id"]
    assert int(record["granted"]) > 600
    # the dialplan sends an emergency call straight to the carrier (no authorization): it
    # is no open call in the ledger, Asterisk alone carries it
    emergency = asyncio.ensure_future(e2e.call("112", "phone-e", hangup_after_ms=15_000))
    await asyncio.sleep(3)  # both answered (the carrier answers at once) and up a while

    now = datetime.now(UTC)
    finding = await warned_past_deadline(e2e, account.id, now)
    ari = AriSettings(
        url=f"http://127.0.0.1:{rig_config.ari_port}",
        user=rig_config.ari_user,
        password=rig_config.ari_password,
    )
    cut_at = time.monotonic()
    ran = await tick(
        e2e.svc,
        SchedulerSettings(ari=ari),
        SchedulerMetrics(),
        now,
        {"abuse_deadlines": job_abuse_deadlines, "cut_calls": job_cut_calls},
    )
    assert ran == {
        "abuse_deadlines": f"suspended after the deadline: #{finding} {account.id}",
        "cut_calls": f"hung up: {account.id}/{call_id}",
    }
    result = await asyncio.wait_for(normal, 30)
    ended_in = time.monotonic() - cut_at
    assert result.answered and result.bye_from_asterisk
    assert ended_in < 10, ended_in
    assert result.answer_to_bye_s is not None and result.answer_to_bye_s < 20

    other = await asyncio.wait_for(emergency, 40)
    assert other.answered and not other.bye_from_asterisk  # the phone hung up, at 15 s
    assert other.answer_to_bye_s is not None and other.answer_to_bye_s >= 14

    cdrs = await e2e.cdrs("phone-e", 2, wait_s=20)
    cdr = next(c for c in cdrs if c["call_id"] == call_id)
    billsec = int(cdr["billsec"])
    assert (cdr["state"], cdr["disposition"], cdr["reason"]) == ("finished", "ANSWER", "OK")
    assert 2 <= billsec <= int(result.answer_to_bye_s) + 1
    assert int(cdr["cost"]) == -(-billsec * 190_000 // 60 // 100) * 100
    assert next(c for c in cdrs if c["call_id"] != call_id)["reason"] == "EMERGENCY"
    assert (await e2e.svc.accounts.get(account.id)).status is AccountStatus.SUSPENDED
    live = await e2e.svc.accounts.live(account.id)
    assert live.reserved == 0
    assert live.balance == 100 * PLN - int(cdr["cost"])
    # the next tick finds nothing left to cut
    assert (
        await tick(
            e2e.svc,
            SchedulerSettings(ari=ari),
            SchedulerMetrics(),
            now,
            {"cut_calls": job_cut_calls},
        )
        == {}
    )


async def test_serve_s_sweeper_hangs_up_the_call_of_an_account_an_operator_suspended(
    e2e: E2E, rig_config: RigConfig
) -> None:
    account = await e2e.account("phone-e", balance=100 * PLN)
    normal = asyncio.ensure_future(e2e.call(MOBILE, "phone-e", max_wait_s=90))
    [record] = await open_calls(e2e, account.id, 1)
    assert record.get("control", "") != "ari"  # a FastAGI call: no session watch holds it
    emergency = asyncio.ensure_future(e2e.call("112", "phone-e", hangup_after_ms=12_000))
    await asyncio.sleep(3)  # both answered and up a while

    # the sweeper of a tollgate serve that holds this switch's ARI
    ari = AriClient(
        AriSettings(
            url=f"http://127.0.0.1:{rig_config.ari_port}",
            user=rig_config.ari_user,
            password=rig_config.ari_password,
        )
    )
    metrics = Metrics()
    sweeper = asyncio.create_task(sweep_forever(e2e.svc.ledger, 0.5, metrics, None, ari))
    try:
        await asyncio.sleep(1.5)  # sweeps while the account is active: nothing is cut
        assert not normal.done()
        cut_at = time.monotonic()
        await e2e.svc.accounts.set_status(account.id, AccountStatus.SUSPENDED, "operator")
        result = await asyncio.wait_for(normal, 30)
        ended_in = time.monotonic() - cut_at
        other = await asyncio.wait_for(emergency, 40)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await ari.close()
    assert result.answered and result.bye_from_asterisk
    assert ended_in < 5, ended_in
    assert other.answered and not other.bye_from_asterisk  # the phone hung up, at 12 s
    assert other.answer_to_bye_s is not None and other.answer_to_bye_s >= 11
    cut = metrics.registry.get_sample_value(
        "tollgate_session_events_total", {"kind": "hangup_suspended"}
    )
    assert cut == 1
    cdrs = await e2e.cdrs("phone-e", 2, wait_s=20)
    cdr = next(c for c in cdrs if c["call_id"] == record["call_id"])
    assert (cdr["state"], cdr["disposition"]) == ("finished", "ANSWER")
    assert (await e2e.svc.accounts.live(account.id)).reserved == 0
