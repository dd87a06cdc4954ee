"""Real calls: SIPp phone -> Asterisk (tollgate's dialplan) -> SIPp carrier, authorized
by `tollgate serve` over FastAGI, with the real Redis ledger and PostgreSQL accounts."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from rating.accounts import AccountKind, AccountStatus
from rating.ledger import CallRequest
from tests.e2e.conftest import E2E

PLN = 1_000_000
MOBILE = "601234567"  # retail deck: 0.19 PLN/min, billed per second


async def test_allowed_call_is_cut_by_asterisk_at_the_granted_time(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=19_000)  # 0.019 PLN buys exactly 6 s
    result = await e2e.call(MOBILE, "phone-a")
    assert result.status == 200 and result.answered
    assert result.bye_from_asterisk
    assert result.answer_to_bye_s is not None and abs(result.answer_to_bye_s - 6) <= 1
    assert e2e.new_carrier_calls() == ["+48601234567"]
    [cdr] = await e2e.cdrs("phone-a", 1)
    assert (cdr["decision"], cdr["reason"], cdr["granted"]) == ("ALLOW", "OK", "6")
    billsec = int(cdr["billsec"])
    assert abs(billsec - 6) <= 1
    assert int(cdr["cost"]) == min(19_000, -(-billsec * 190_000 // 60 // 100) * 100)
    live = await e2e.svc.accounts.live("e2e-a")
    assert live.balance == 19_000 - int(cdr["cost"]) and live.reserved == 0
    assert live.balance >= 0


PREMIUM_FORMS = ("{n}", "0{n}", "48{n}", "0048{n}", "+48{n}")


@pytest.mark.parametrize(
    ("form", "e164"),
    [
        *((f.format(n="701234567"), "+48701234567") for f in PREMIUM_FORMS),
        # 705 is audiotext too, though libphonenumber calls it invalid (it was answered 484)
        *((f.format(n="705123456"), "+48705123456") for f in PREMIUM_FORMS),
    ],
)
async def test_premium_refused_in_every_dialling_form(e2e: E2E, form: str, e164: str) -> None:
    await e2e.account("phone-b", balance=100 * PLN)
    result = await e2e.call(form, "phone-b")
    assert result.status == 403 and not result.answered
    [cdr] = await e2e.cdrs("phone-b", 1)
    assert (cdr["reason"], cdr["e164"], cdr["class"]) == ("PREMIUM_BLOCKED", e164, "premium")
    assert e2e.new_carrier_calls() == []


async def test_refusals_get_their_sip_code_and_never_reach_the_carrier(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=0)
    await e2e.account(
        "phone-b", kind=AccountKind.POSTPAID, credit_limit=100 * PLN, invoice_overdue=True
    )
    await e2e.account("phone-c", balance=100 * PLN, status=AccountStatus.SUSPENDED)
    # phone-f's accountcode has no account
    cases = [
        ("phone-a", 402, "INSUFFICIENT_CREDIT"),
        ("phone-b", 402, "INVOICE_OVERDUE"),
        ("phone-c", 403, "ACCOUNT_SUSPENDED"),
        ("phone-f", 403, "UNKNOWN_ACCOUNT"),
    ]
    results = await asyncio.gather(*(e2e.call("221234567", phone) for phone, _, _ in cases))
    for (phone, code, reason), result in zip(cases, results, strict=True):
        assert result.status == code, (phone, result)
        [cdr] = await e2e.cdrs(phone, 1)
        assert cdr["reason"] == reason
    assert e2e.new_carrier_calls() == []


async def test_negative_balance_is_refused(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=PLN)
    await e2e.svc.accounts.add_entry(
        "e2e-a", "adjustment", -2 * PLN, note="chargeback", at=datetime.now(UTC)
    )
    result = await e2e.call(MOBILE, "phone-a")
    assert result.status == 402


async def test_emergency_goes_out_with_negative_balance_and_suspended_account(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=PLN)
    await e2e.svc.accounts.add_entry("e2e-a", "adjustment", -5 * PLN, at=datetime.now(UTC))
    await e2e.account("phone-b", balance=PLN, status=AccountStatus.SUSPENDED)
    a, b = await asyncio.gather(
        e2e.call("112", "phone-a", hangup_after_ms=1500),
        e2e.call("998", "phone-b", hangup_after_ms=1500),
    )
    assert a.answered and b.answered
    assert sorted(e2e.new_carrier_calls()) == ["112", "998"]
    for phone in ("phone-a", "phone-b"):
        [cdr] = await e2e.cdrs(phone, 1)
        assert (cdr["reason"], cdr["cost"], cdr["class"]) == ("EMERGENCY", "0", "emergency")
    assert (await e2e.svc.accounts.live("e2e-a")).balance == -4 * PLN


async def test_emergency_goes_out_when_tollgate_is_stopped(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=PLN)
    e2e.tollgate.stop()
    result = await e2e.call("112", "phone-a", hangup_after_ms=1000)
    assert result.answered
    assert e2e.new_carrier_calls() == ["112"]


async def test_ordinary_calls_refused_when_tollgate_is_stopped(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=100 * PLN)
    e2e.tollgate.stop()
    result = await e2e.call(MOBILE, "phone-a")
    assert result.status == 503 and not result.answered
    assert e2e.new_carrier_calls() == []


async def test_frozen_tollgate_refuses_within_the_budget(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=100 * PLN)
    e2e.tollgate.freeze()
    try:
        result, emergency = await asyncio.gather(
            e2e.call(MOBILE, "phone-a"), e2e.call("999", "phone-b", hangup_after_ms=1000)
        )
    finally:
        e2e.tollgate.thaw()
    assert result.status == 503 and not result.answered
    # refused by the dialplan's budget (2 s), not by the phone giving up
    assert result.setup_s is not None and result.setup_s < e2e.config.agi_budget_s + 5
    assert emergency.answered
    assert e2e.new_carrier_calls() == ["999"]


async def test_parallel_calls_never_spend_more_than_the_credit(e2e: E2E) -> None:
    credit = 190_000  # 60 s of mobile calls in total
    await e2e.account("phone-c", balance=credit)
    results = await asyncio.gather(*(e2e.call(MOBILE, "phone-c", max_wait_s=90) for _ in range(20)))
    answered = [r for r in results if r.answered]
    assert answered, "the credit buys at least one call"
    assert all(r.status in (200, 402) for r in results), [r.status for r in results]
    cdrs = await e2e.cdrs("phone-c", 20, wait_s=30)
    assert len(cdrs) == 20
    assert sum(int(c["cost"]) for c in cdrs) <= credit
    assert sum(int(c["granted"]) for c in cdrs) <= 60
    live = await e2e.svc.accounts.live("e2e-c")
    assert live.balance >= 0 and live.reserved == 0
    talk = sum(r.answer_to_bye_s or 0 for r in answered)
    assert talk <= 60 + len(answered)  # Asterisk cut every call at its grant


async def test_wangiri_short_inbound_calls_then_a_callback_raise_a_finding(e2e: E2E) -> None:
    await e2e.account("phone-a", balance=100 * PLN)
    did = "+48221000001"
    e2e.rig.cli(f"database put tollgate_did {did} e2e-a")
    callers = [f"+4420794600{n:02d}" for n in range(1, 6)]
    completed, failed = await e2e.ring_once(did, callers, ring_ms=1500)
    assert (completed, failed) == (5, 0)
    # the switch reported each inbound call; the detector saw five short ones from +4420794
    bait = await wangiri(e2e, "info")
    assert bait["subject"] == "+4420794"
    assert json.loads(bait["evidence"])["figures"]["short_inbound"] == 5
    callback = await e2e.call("00442079460003", "phone-a", hangup_after_ms=2000)
    assert callback.answered
    assert (await wangiri(e2e, "warning"))["subject"] == "+4420794"


async def wangiri(e2e: E2E, severity: str) -> dict[str, str]:
    assert e2e.svc.pool is not None
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        row = await e2e.svc.pool.fetchrow(
            "select subject, evidence::text as evidence from abuse_findings"
            " where account = 'e2e-a' and rule = 'wangiri' and severity = $1",
            severity,
        )
        if row is not None:
            return dict(row)
        assert asyncio.get_running_loop().time() < deadline, f"no {severity} wangiri finding"
        await asyncio.sleep(0.2)


def parked(e: E2E) -> list[str]:
    """Keys in AstDB's tollgate_pending (where dialplans before the outcome log parked)."""
    out = e.rig.cli("database show tollgate_pending")
    return [line.split(":")[0].strip() for line in out.splitlines() if "/tollgate_pending/" in line]


async def outcome_lines(e: E2E, count: int, wait_s: float = 10) -> list[str]:
    """The outcome log's non-empty lines, once it has at least `count` (CDRs are written
    just after the channel is gone)."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = e.rig.outcome_lines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.1)


async def open_calls(e: E2E, account: str, wait_s: float = 15) -> list[str]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls = [
            r["call_id"] for r in await e.svc.ledger.open_sessions() if r["account"] == account
        ]
        if calls:
            return calls
        await asyncio.sleep(0.1)
    raise AssertionError(f"no open call of {account}")


async def test_outcomes_logged_while_tollgate_is_killed_are_settled_once(e2e: E2E) -> None:
    """FastAGI only (no ARI): Asterisk's cdr_custom appends every call's outcome to the
    outcome log whether tollgate runs or not; tollgate, restarted, reads on from its stored
    offset. Every call gets exactly one CDR, and nothing is written to AstDB."""
    await e2e.account("phone-a", balance=100 * PLN)
    running = asyncio.ensure_future(e2e.call(MOBILE, "phone-a", hangup_after_ms=4000))
    [call_id] = await open_calls(e2e, "e2e-a")
    await asyncio.sleep(1)
    e2e.tollgate.kill()
    emergency = await e2e.call("112", "phone-a", hangup_after_ms=1000)
    result = await running
    assert result.answered and emergency.answered
    lines = await outcome_lines(e2e, 2)
    # both outcomes waited in the log while tollgate was away, one line per call
    assert len(lines) == 2 and {line.split("|")[0] for line in lines} >= {call_id}
    assert [line.split("|")[6] for line in lines].count("1") == 1  # the emergency flag
    assert parked(e2e) == []
    e2e.tollgate.start()
    cdrs = await e2e.cdrs("phone-a", 2, wait_s=30)
    await asyncio.sleep(3)  # a second settlement of either would show up now
    cdrs = await e2e.cdrs("phone-a", 3, wait_s=0)
    assert len(cdrs) == 2 and len({c["call_id"] for c in cdrs}) == 2
    normal = next(c for c in cdrs if c["call_id"] == call_id)
    other = next(c for c in cdrs if c["call_id"] != call_id)
    assert (other["reason"], other["class"], other["cost"]) == ("EMERGENCY", "emergency", "0")
    assert abs(int(normal["billsec"]) - 4) <= 1 and int(normal["cost"]) > 0
    live = await e2e.svc.accounts.live("e2e-a")
    assert (live.balance, live.reserved) == (100 * PLN - int(normal["cost"]), 0)
    assert await asyncio.to_thread(e2e.metric, "tollgate_outcome_log_settled_total") >= 2
    # the offset is stored: a restart replays nothing (no line is read twice into a CDR)
    e2e.tollgate.stop()
    e2e.tollgate.start()
    await asyncio.sleep(3)
    assert len(await e2e.cdrs("phone-a", 3, wait_s=0)) == 2
    assert await asyncio.to_thread(e2e.metric, "tollgate_outcome_log_settled_total") == 0


async def test_an_outcome_an_older_dialplan_parked_in_astdb_is_drained_at_start_up(
    e2e: E2E,
) -> None:
    """Upgrade: what the AstDB-parking dialplan left in tollgate_pending is settled once by
    the next `tollgate serve` (AMI set) and deleted from AstDB."""
    await e2e.account("phone-a", balance=100 * PLN)
    call_id = f"legacy-{time.time_ns()}"
    request = CallRequest("e2e-a", call_id, MOBILE, cap_s=120)
    assert (await e2e.svc.ledger.authorize(request)).allowed
    e2e.tollgate.stop()
    value = f"e2e-a|ANSWER|30000|16|{MOBILE}|0|{time.time():.3f}"
    e2e.rig.cli(f"database put tollgate_pending {call_id} {value}")
    assert parked(e2e) == [f"/tollgate_pending/{call_id}"]
    e2e.tollgate.start()
    [cdr] = await e2e.cdrs("phone-a", 1, wait_s=20)
    assert (cdr["call_id"], cdr["billsec"], cdr["disposition"]) == (call_id, "30", "ANSWER")
    assert parked(e2e) == []
    live = await e2e.svc.accounts.live("e2e-a")
    assert (live.balance, live.reserved) == (100 * PLN - int(cdr["cost"]), 0)


async def test_call_refused_while_tollgate_is_frozen_is_never_authorized_afterwards(
    e2e: E2E,
) -> None:
    await e2e.account("phone-a", balance=100 * PLN)
    e2e.tollgate.freeze()
    try:
        result = await e2e.call(MOBILE, "phone-a")
    finally:
        e2e.tollgate.thaw()
    assert result.status == 503 and not result.answered
    # tollgate wakes up and reads the stale request, then the call's finish report
    await e2e.cdrs("phone-a", 1, wait_s=20)
    await asyncio.sleep(2)  # anything else it would do about this call shows up now
    assert e2e.svc.pool is not None
    rows = await e2e.svc.pool.fetch(
        "select decision, started_at, answered_at, ended_at from cdrs where account = $1",
        "e2e-a",
    )
    assert all(r["decision"] != "ALLOW" for r in rows), rows
    for r in rows:
        assert r["started_at"] <= (r["answered_at"] or r["ended_at"]) <= r["ended_at"]
    live = await e2e.svc.accounts.live("e2e-a")
    assert (live.balance, live.reserved) == (100 * PLN, 0)
    assert e2e.new_carrier_calls() == []
    late = (
        'tollgate_authorizations_total{decision="DENY",reason="AUTHORIZE_TIMEOUT",switch="fastagi"}'
    )
    assert await asyncio.to_thread(e2e.metric, late) >= 1
