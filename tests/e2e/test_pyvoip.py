"""One call placed and answered by pyVoIP phones, through the real dialplan and tollgate.

    pyVoIP caller ──INVITE 601234567──▶ Asterisk (2nd rig) ──INVITE +48601234567──▶ pyVoIP callee
    127.0.0.9, account e2e-e            │ tollgate-outbound        trunk "carrier"   127.0.0.1:
                                        ▼ FastAGI authorize/finish                   carrier port
                          the session's `tollgate serve` (same AGI port as the SIPp rig)

A second Asterisk rig runs beside the session's: its trunk's static contact is the callee
phone's port (the session rig's carrier port belongs to SIPp) and it loads the pyVoIP
endpoints from tests/e2e/pyvoip/. Both phones run as subprocesses (tests/e2e/pyvoip_phone.py)
with hard timeouts and report the SIP messages they receive. Assertions are on those messages
(the callee is the carrier side), the ledger and both CDRs, never on pyVoIP's call state
(with pyVoIP's own broken ACK the caller's call stays ANSWERED: see pyvoip_phone.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rating.deck import load_deck
from rating.tariff import rate_call
from tests.conftest import RETAIL
from tests.e2e.conftest import E2E, PHONE_ACCOUNTS, TollgateProcess
from tests.e2e.phones import PhoneProcess, wait_call_end
from tests.e2e.rig import AsteriskRig, RigConfig, free_udp_port

HERE = Path(__file__).resolve().parent
EXTRA_CONF = HERE / "pyvoip"

CALLER_USER, CALLER_IP = "pyvoip-caller", "127.0.0.9"  # pjsip_extra.conf
CALLEE_USER, CALLEE_IP = "pyvoip-callee", "127.0.0.1"
ACCOUNT_PHONE = "phone-e"  # pyvoip-caller carries @ACCT_E@
MOBILE = "601234567"  # retail deck: 0.19 PLN/min, billed per second
BALANCE = 19_000  # 0.019 PLN buys exactly 6 s
GRANT_S = 6
PHONE_TIMEOUT_S = 40


@pytest.fixture(scope="module")
def pyvoip_rig(rig_config: RigConfig, tollgate: TollgateProcess) -> Iterator[AsteriskRig]:
    """A second Asterisk with the pyVoIP endpoints, authorizing through the session's
    tollgate (following this Asterisk's outcome log meanwhile); its carrier port is
    where the callee phone will listen."""
    while True:
        config = RigConfig.with_free_ports(
            f"pyvoip-{os.getpid()}",
            agi_port=rig_config.agi_port,
            agi_budget_s=rig_config.agi_budget_s,
            accounts=PHONE_ACCOUNTS,
            extra_conf_dir=str(EXTRA_CONF),
            pg_dsn=rig_config.pg_dsn,  # registrations are stored there
        )
        # rig.sh derives the RTP range from the SIP port modulo 1000: keep it apart from the
        # session rig's.
        if config.sip_port % 1000 != rig_config.sip_port % 1000:
            break
    rig = AsteriskRig(config)
    rig.start()
    # Call outcomes are written by the Asterisk that carried the call (its outcome log; its
    # AMI for live calls): while this module runs, tollgate follows this one (one tollgate per
    # switch, as deployed).
    saved = dict(tollgate.env)
    tollgate.stop()
    tollgate.env["TOLLGATE_AMI_PORT"] = str(config.ami_port)
    tollgate.env["TOLLGATE_OUTCOME_LOG"] = str(rig.outcome_log)
    tollgate.start()
    try:
        yield rig
    finally:
        tollgate.stop()
        tollgate.env.clear()
        tollgate.env.update(saved)
        tollgate.start()
        rig.stop()


async def test_call_between_pyvoip_phones_is_rated_and_cut_at_the_grant(
    e2e: E2E, pyvoip_rig: AsteriskRig, tmp_path: Path
) -> None:
    rig = pyvoip_rig
    config = rig.config
    await e2e.account(ACCOUNT_PHONE, balance=BALANCE)
    account = PHONE_ACCOUNTS[ACCOUNT_PHONE]
    cdrs_before = len(rig.cdr_rows())
    workdir = tmp_path
    common = ["--server", "127.0.0.1", "--server-port", str(config.sip_port)]
    common += ["--timeout", str(PHONE_TIMEOUT_S)]

    callee = PhoneProcess(
        "callee", workdir, *common, "--user", CALLEE_USER, "--ip", CALLEE_IP,
        "--sip-port", str(config.carrier_port), "--rtp-port", str(free_udp_port(CALLEE_IP)),
    )  # fmt: skip
    caller: PhoneProcess | None = None
    try:
        registered = await asyncio.to_thread(callee.wait_for, "registered", 15)
        assert registered, callee.describe()
        caller = PhoneProcess(
            "caller", workdir, *common, "--user", CALLER_USER, "--ip", CALLER_IP,
            "--sip-port", str(free_udp_port(CALLER_IP)),
            "--rtp-port", str(free_udp_port(CALLER_IP)), "--number", MOBILE,
        )  # fmt: skip
        await asyncio.to_thread(wait_call_end, callee, caller, PHONE_TIMEOUT_S)
        callee_rc, caller_rc = await asyncio.gather(
            asyncio.to_thread(callee.wait, 15), asyncio.to_thread(caller.wait, 15)
        )
    finally:
        for phone in (callee, caller):
            if phone is not None:
                phone.kill()
    diag = f"{callee.describe()}\n{caller.describe()}"

    # The callee got one INVITE, for the normalised number, and answered it; Asterisk (not a
    # phone) ended the call with a BYE to both phones at the granted limit.
    assert not callee.of("error") and not caller.of("error"), diag
    [invite] = callee.of("invite")
    assert invite["number"] == "+48601234567", diag
    [answered] = callee.of("answered")
    [bye] = callee.of("bye")
    assert answered["call_id"] == invite["call_id"] == bye["call_id"], diag
    assert abs(bye["t"] - answered["t"] - GRANT_S) <= 1, diag
    # The caller's leg: answered once (Asterisk took its ACK: no 200 OK retransmissions) and
    # ended by Asterisk's BYE, not by the phone.
    [caller_answered] = caller.of("answered")
    [caller_bye] = caller.of("bye")
    assert abs(caller_bye["t"] - caller_answered["t"] - GRANT_S) <= 1, diag
    oks = [
        e for e in caller.of("sip") if e["line"].startswith("SIP/2.0 200") and "INVITE" in e["cseq"]
    ]
    assert len(oks) == 1, diag
    assert not caller.of("hangup") and not caller.of("rejected"), diag
    assert (callee_rc, caller_rc) == (0, 0), diag

    # tollgate: ALLOW/OK for 6 s, billed at the rated cost, exactly that cost left the balance.
    [cdr] = await e2e.cdrs(ACCOUNT_PHONE, 1)
    assert (cdr["decision"], cdr["reason"], cdr["granted"]) == ("ALLOW", "OK", str(GRANT_S)), cdr
    assert cdr["e164"] == "+48601234567", cdr
    billsec = int(cdr["billsec"])
    assert billsec > 0 and abs(billsec - GRANT_S) <= 1, cdr
    answered_at = datetime.fromtimestamp(int(cdr["answered_at"]) / 1000, UTC)
    rated = rate_call(load_deck(RETAIL), "48601234567", answered_at, billsec).cost
    assert int(cdr["cost"]) == int(cdr["rated_cost"]) == rated > 0, cdr
    live = await e2e.svc.accounts.live(account)
    assert live.balance == BALANCE - int(cdr["cost"]) and live.reserved == 0
    assert live.balance >= 0

    # Asterisk's own CDR: the same call, answered, cut at the grant, carrying tollgate's id.
    rows = await asyncio.to_thread(rig.wait_for_cdrs, cdrs_before + 1)
    [row] = [r for r in rows[cdrs_before:] if r["accountcode"] == account]
    assert (row["dst"], row["dcontext"], row["disposition"]) == (
        MOBILE,
        "tollgate-outbound",
        "ANSWERED",
    ), row
    assert row["channel"].startswith(f"PJSIP/{CALLER_USER}-"), row
    assert row["dstchannel"].startswith("PJSIP/carrier-"), row
    assert row["lastapp"] == "Dial" and f"L({GRANT_S * 1000})" in row["lastdata"], row
    assert abs(int(row["billsec"]) - GRANT_S) <= 1, row
    assert row["userfield"] == cdr["call_id"], (row, cdr)


async def test_carrier_call_to_a_number_rings_the_accounts_registered_phone(
    e2e: E2E, pyvoip_rig: AsteriskRig, tmp_path: Path
) -> None:
    """Inbound: the carrier's gateway calls a number assigned to the account whose SIP
    endpoint is the registered pyVoIP phone; the phone answers, the call is rated (inbound
    is free by default) and recorded as inbound on the account."""
    from numbering.settings import NumberingSettings
    from numbering.store import NumberStore
    from rating.accounts import Account
    from tests.e2e.rig import place_call

    config = pyvoip_rig.config
    account = await e2e.svc.accounts.create(Account(CALLEE_USER, deck="retail"))
    assert e2e.svc.pool is not None
    numbers = NumberStore(e2e.svc.pool, e2e.svc.accounts, NumberingSettings())
    now = datetime.now(UTC)
    did = "+48221000031"
    await numbers.add(did, carrier="rig", monthly_cost=0, monthly_price=0, at=now, actor="e2e")
    await numbers.assign(did, account.id, at=now, actor="e2e")
    common = ["--server", "127.0.0.1", "--server-port", str(config.sip_port)]
    common += ["--timeout", str(PHONE_TIMEOUT_S)]
    callee = PhoneProcess(
        "callee", tmp_path, *common, "--user", CALLEE_USER, "--ip", CALLEE_IP,
        "--sip-port", str(free_udp_port(CALLEE_IP)), "--rtp-port", str(free_udp_port(CALLEE_IP)),
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(callee.wait_for, "registered", 15), callee.describe()
        result = await asyncio.to_thread(
            place_call, did, "127.0.0.10", sip_port=config.sip_port, hangup_after_ms=3000
        )
        await asyncio.to_thread(callee.wait_for, "bye", 15)
    finally:
        callee.kill()
    diag = callee.describe()
    assert result.status == 200 and result.answered, (result, diag)
    [invite] = callee.of("invite")  # rung at its registered contact, once
    [answered] = callee.of("answered")
    assert answered["call_id"] == invite["call_id"], diag
    deadline = time.monotonic() + 20
    while True:
        row = await e2e.svc.pool.fetchrow(
            "select direction, number_class, e164, billsec, cost, disposition from cdrs"
            " where account = $1 and state = 'finished'",
            account.id,
        )
        if row is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert row is not None, diag
    assert (row["direction"], row["number_class"], row["e164"], row["cost"]) == (
        "in", "inbound", did, 0,
    )  # fmt: skip
    assert abs(row["billsec"] - 3) <= 1 and row["disposition"] == "ANSWER"
    assert (await e2e.svc.accounts.live(account.id)).reserved == 0
