"""SIP logins provisioned by `tollgate sip ...` while Asterisk runs: realtime PJSIP from
PostgreSQL, digest authentication, no reload.

    pyVoIP phone ──REGISTER/INVITE (digest)──▶ Asterisk (session rig) ──▶ SIPp carrier
    127.0.0.12, login from `sip create`         realtime ps_* tables in the test database

The phone uses exactly the credentials the command printed. Assertions are on what Asterisk
answered (the phone's events), the registrations Asterisk stored in PostgreSQL, the carrier,
tollgate's CDR and Asterisk's own CDR."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import E2E, PHONE_ACCOUNTS, ROOT
from tests.e2e.phones import PhoneProcess
from tests.e2e.rig import free_udp_port

PHONE_IP = "127.0.0.12"  # identified by nothing but its login
OWNER = "phone-f"  # the login's account is this phone's (e2e-f); the SIPp phone stays idle
MOBILE = "601234567"  # retail deck: 0.19 PLN/min per second
BALANCE = 19_000  # buys exactly 6 s
GRANT_S = 6
TIMEOUT_S = 40


def sip_cli(e2e: E2E, *args: str) -> dict[str, Any]:
    """`tollgate sip ...` as an operator runs it, against the session's database."""
    res = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "sip", *args],
        env=e2e.tollgate.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    found: dict[str, Any] = json.loads(res.stdout)
    return found


def phone(
    e2e: E2E, workdir: Path, mode: str, login: str, password: str, *extra: str
) -> PhoneProcess:
    return PhoneProcess(
        mode, workdir,
        "--server", "127.0.0.1", "--server-port", str(e2e.config.sip_port),
        "--user", login, "--password", password, "--ip", PHONE_IP,
        "--sip-port", str(free_udp_port(PHONE_IP)), "--rtp-port", str(free_udp_port(PHONE_IP)),
        "--timeout", str(TIMEOUT_S), *extra,
    )  # fmt: skip


async def contacts(e2e: E2E, login: str) -> list[dict[str, Any]]:
    assert e2e.svc.pool is not None
    rows = await e2e.svc.pool.fetch(
        "select uri, via_addr, endpoint from asterisk.ps_contacts where endpoint = $1", login
    )
    return [dict(r) for r in rows]


async def registers(e2e: E2E, workdir: Path, login: str, password: str) -> tuple[bool, str]:
    """Whether Asterisk accepts a REGISTER with these credentials (the phone then exits)."""
    p = phone(e2e, workdir, "callee", login, password, "--timeout", "6")
    try:
        event = await asyncio.to_thread(p.wait_for, "registered", 15)
        return event is not None, p.describe()
    finally:
        p.kill()


async def test_login_created_while_asterisk_runs_registers_and_its_call_is_cut_at_the_grant(
    e2e: E2E, tmp_path: Path
) -> None:
    await e2e.account(OWNER, balance=BALANCE)
    account = PHONE_ACCOUNTS[OWNER]
    cdrs_before = len(e2e.rig.cdr_rows())

    created = sip_cli(e2e, "create", account)
    login, password = created["username"], created["password"]
    assert login == created["login"] and len(login) == 7 and login.isdigit(), created
    assert created["account"] == account and created["status"] == "active", created

    caller = phone(e2e, tmp_path, "caller", login, password, "--number", MOBILE)
    try:
        registered = await asyncio.to_thread(caller.wait_for, "registered", 15)
        assert registered, caller.describe()
        # Asterisk stored the registration in PostgreSQL (shared by every Asterisk box).
        [contact] = await contacts(e2e, login)
        assert contact["via_addr"] == PHONE_IP and PHONE_IP in contact["uri"], contact
        bye = await asyncio.to_thread(caller.wait_for, "bye", TIMEOUT_S)
        await asyncio.to_thread(caller.wait, 15)
    finally:
        caller.kill()
    diag = caller.describe()
    assert bye is not None and not caller.of("rejected"), diag
    [answered] = caller.of("answered")
    assert abs(bye["t"] - answered["t"] - GRANT_S) <= 1, diag

    # The carrier got the normalised number; Asterisk, not the phone, ended the call.
    calls = await asyncio.to_thread(e2e.carrier.wait_for_calls, e2e.carrier_seen + 1, True)
    [call] = calls[e2e.carrier_seen :]
    assert call.number == "+48601234567" and call.bye_from == "asterisk", call

    # tollgate billed the login's account (the endpoint's accountcode) for the granted time.
    [cdr] = await e2e.cdrs(OWNER, 1)
    assert (cdr["decision"], cdr["reason"], cdr["granted"]) == ("ALLOW", "OK", str(GRANT_S)), cdr
    assert abs(int(cdr["billsec"]) - GRANT_S) <= 1 and int(cdr["cost"]) > 0, cdr
    live = await e2e.svc.accounts.live(account)
    assert live.balance == BALANCE - int(cdr["cost"]) and live.reserved == 0
    rows = await asyncio.to_thread(e2e.rig.wait_for_cdrs, cdrs_before + 1)
    [row] = [r for r in rows[cdrs_before:] if r["accountcode"] == account]
    assert row["channel"].startswith(f"PJSIP/{login}-"), row
    assert row["userfield"] == cdr["call_id"], (row, cdr)

    # `sip show` reports the login, never its credential.
    shown = sip_cli(e2e, "show", login)
    assert shown["account"] == account and "password" not in json.dumps(shown), shown


async def test_wrong_password_is_refused_and_a_disabled_login_stops_working(
    e2e: E2E, tmp_path: Path
) -> None:
    await e2e.account(OWNER, balance=BALANCE)
    created = sip_cli(e2e, "create", PHONE_ACCOUNTS[OWNER], "--login", "4812345")
    login, password = created["username"], created["password"]
    assert login == "4812345"

    ok, diag = await registers(e2e, tmp_path, login, password[::-1])
    assert not ok, diag
    assert await contacts(e2e, login) == []

    ok, diag = await registers(e2e, tmp_path, login, password)
    assert ok, diag

    disabled = sip_cli(e2e, "disable", login, "--reason", "customer asked")
    assert (disabled["status"], disabled["status_reason"]) == ("disabled", "customer asked")
    # Its registrations are gone and the right password no longer gets in: no reload.
    assert await contacts(e2e, login) == []
    ok, diag = await registers(e2e, tmp_path, login, password)
    assert not ok, diag

    sip_cli(e2e, "enable", login)
    ok, diag = await registers(e2e, tmp_path, login, password)
    assert ok, diag

    # A new password: the old one is refused at once, the new one works.
    changed = sip_cli(e2e, "passwd", login)
    ok, diag = await registers(e2e, tmp_path, login, password)
    assert not ok, diag
    ok, diag = await registers(e2e, tmp_path, login, changed["password"])
    assert ok, diag


async def test_a_phone_registered_before_its_login_was_disabled_cannot_call(
    e2e: E2E, tmp_path: Path
) -> None:
    """Disabling takes effect at the next INVITE too, not only at the next REGISTER."""
    await e2e.account(OWNER, balance=BALANCE)
    created = sip_cli(e2e, "create", PHONE_ACCOUNTS[OWNER])
    login, password = created["username"], created["password"]
    go = tmp_path / "dial-now"
    caller = phone(
        e2e, tmp_path, "caller", login, password, "--number", MOBILE, "--wait-file", str(go)
    )
    try:
        assert await asyncio.to_thread(caller.wait_for, "registered", 15), caller.describe()
        sip_cli(e2e, "disable", login)
        go.touch()
        rejected = await asyncio.to_thread(caller.wait_for, "rejected", TIMEOUT_S)
        await asyncio.to_thread(caller.wait, 15)
    finally:
        caller.kill()
    diag = caller.describe()
    assert rejected is not None and rejected["status"] in (401, 403), diag
    assert not caller.of("answered"), diag
    assert e2e.carrier.calls()[e2e.carrier_seen :] == [], diag
    assert await e2e.cdrs(OWNER, 0, wait_s=0) == []
