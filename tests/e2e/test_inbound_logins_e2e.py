"""A carrier's call to a customer's number rings the phone registered with the account's SIP
login, through the real Asterisk (realtime PJSIP from PostgreSQL):

    SIPp carrier ──INVITE DID──▶ Asterisk [tollgate-carrier-in] ──INVITE──▶ pyVoIP phone
    127.0.0.10                    │ FastAGI incoming: grant RING =        registered with a
                                  ▼ the account's active SIP logins       login from `sip create`

The account has two logins: one with a registered phone, one without any (its absence must not
stop the call), and a locked one (never rung). The DID is in the inbound deck's paid range,
so the call is rated with the inbound deck, debited, and listed on the customer's statement."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from billing.listing import listing
from billing.period import Period
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from rating.accounts import Account
from rating.money import format_micro
from tests.e2e.conftest import E2E
from tests.e2e.test_sip_logins import phone, sip_cli

PLN = 1_000_000
DID = "+48221090001"  # the inbound deck's paid range: 0.60 PLN/min, per second
PER_SECOND = 10_000
HOLD_MS = 3000


async def _finished_cdr(e2e: E2E, account: str) -> dict[str, object]:
    assert e2e.svc.pool is not None
    deadline = time.monotonic() + 20
    while True:
        row = await e2e.svc.pool.fetchrow(
            "select call_id, direction, number_class, e164, deck, billsec, cost, disposition"
            " from cdrs where account = $1 and state = 'finished'",
            account,
        )
        if row is not None or time.monotonic() > deadline:
            assert row is not None, f"no CDR of {account}"
            return dict(row)
        await asyncio.sleep(0.2)


async def test_carrier_call_rings_the_phone_of_the_accounts_sip_login_and_is_billed(
    e2e: E2E, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    account = await e2e.svc.accounts.create(Account("inbound-owner", deck="retail"))
    await e2e.svc.accounts.add_entry(account.id, "topup", 10 * PLN, at=now)
    assert e2e.svc.pool is not None
    numbers = NumberStore(e2e.svc.pool, e2e.svc.accounts, NumberingSettings())
    await numbers.add(DID, carrier="rig", monthly_cost=0, monthly_price=0, at=now, actor="e2e")
    await numbers.assign(DID, account.id, at=now, actor="e2e")
    # as an operator provisions them: `tollgate sip create ACCOUNT`
    idle = sip_cli(e2e, "create", account.id)  # no phone ever registers with it
    used = sip_cli(e2e, "create", account.id)
    locked = sip_cli(e2e, "create", account.id)
    sip_cli(e2e, "disable", locked["login"], "--reason", "e2e")
    mirrored = await e2e.svc.redis.hget(e2e.svc.settings.keyspace.account(account.id), "sip_logins")
    assert mirrored is not None
    assert sorted(mirrored.decode().split(",")) == sorted([idle["login"], used["login"]])

    callee = phone(e2e, tmp_path, "callee", used["login"], used["password"])
    try:
        assert await asyncio.to_thread(callee.wait_for, "registered", 15), callee.describe()
        result = await e2e.call(DID, "127.0.0.10", hangup_after_ms=HOLD_MS)
        await asyncio.to_thread(callee.wait_for, "bye", 15)
    finally:
        callee.kill()
    diag = callee.describe()
    assert result.status == 200 and result.answered, (result, diag)
    [invite] = callee.of("invite")  # rung once, at its registered contact
    [answered] = callee.of("answered")
    assert answered["call_id"] == invite["call_id"], diag

    cdr = await _finished_cdr(e2e, account.id)
    assert (cdr["direction"], cdr["number_class"], cdr["e164"], cdr["deck"]) == (
        "in", "inbound", DID, "inbound-e2e",
    )  # fmt: skip
    billsec = int(str(cdr["billsec"]))
    assert abs(billsec - HOLD_MS // 1000) <= 1 and cdr["disposition"] == "ANSWER", cdr
    assert cdr["cost"] == billsec * PER_SECOND, cdr  # the inbound deck's rate, per second
    live = await e2e.svc.accounts.live(account.id)
    assert (live.balance, live.reserved) == (10 * PLN - billsec * PER_SECOND, 0)

    # the customer's listing of the month shows the inbound call with its charge
    async with e2e.svc.pool.acquire() as conn:
        shown = (await listing(conn, account, Period.of(now, account.timezone))).as_dict()
    [call] = [c for c in shown["calls"] if c["call_id"] == cdr["call_id"]]
    assert (call["direction"], call["number"], call["class"]) == ("in", DID, "inbound")
    assert call["cost"] == format_micro(billsec * PER_SECOND), call
