"""The SIP edge's guard with a real Asterisk: SIPp sends REGISTERs with a wrong password,
Asterisk reports each failed authentication on AMI, `tollgate sip guard` counts them, locks
the login at the threshold (Asterisk then refuses even the right password), raises a
critical abuse finding, and blocks the source address at its own threshold (recorded, and
the operator's block command run)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, PHONE_ACCOUNTS, ROOT
from tests.e2e.rig import free_tcp_port, free_udp_port
from tests.e2e.test_sip_logins import registers, sip_cli

ATTACKER = "127.0.0.13"
LOGIN_FAILURES = 3
ADDRESS_FAILURES = 6
SCENARIO = ROOT / "tests/e2e/sipp/uac_register_auth.xml"


class Guard:
    def __init__(self, env: dict[str, str], blocked_file: Path) -> None:
        self.port = free_tcp_port()
        self.log = Path(tempfile.mkdtemp(prefix="tollgate-guard-")) / "guard.log"
        env = {
            **env,
            "TOLLGATE_METRICS_PORT": str(self.port),
            "TOLLGATE_SIP_GUARD_LOGIN_FAILURES": str(LOGIN_FAILURES),
            "TOLLGATE_SIP_GUARD_ADDRESS_FAILURES": str(ADDRESS_FAILURES),
            "TOLLGATE_SIP_GUARD_BLOCK_S": "3600",
            "TOLLGATE_SIP_GUARD_BLOCK_COMMAND": (
                f"sh -c 'echo {{address}} {{seconds}} >> {blocked_file}'"
            ),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tollgate.cli", "sip", "guard"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def metric(self, sample: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as r:
                text = r.read().decode()
        except OSError:
            return None
        found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def failures(self) -> float:
        return sum(
            self.metric(f'tollgate_sip_auth_failures_total{{kind="{k}"}}') or 0
            for k in ("bad_password", "unknown_login", "acl")
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def guard(e2e: E2E, tmp_path: Path) -> Iterator[Guard]:
    g = Guard(e2e.tollgate.env, tmp_path / "blocked.txt")
    try:
        deadline = time.monotonic() + 30
        while g.metric("tollgate_sip_lockouts_total") is None:
            assert g.proc.poll() is None, g.log.read_text()
            assert time.monotonic() < deadline, g.log.read_text()
            time.sleep(0.1)
        yield g
    finally:
        g.stop()


def wrong_register(sip_port: int, login: str, workdir: Path) -> int:
    """One REGISTER with a wrong password from the attacker's address; SIPp's exit code."""
    return subprocess.run(
        [
            "sipp", f"127.0.0.1:{sip_port}", "-sf", str(SCENARIO), "-s", login,
            "-au", login, "-ap", "not-the-password", "-i", ATTACKER,
            "-p", str(free_udp_port(ATTACKER)), "-m", "1", "-nostdin", "-timeout", "15s",
        ],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
    ).returncode  # fmt: skip


def attack_until(guard: Guard, e2e: E2E, login: str, workdir: Path, failures: int) -> None:
    """Wrong REGISTERs one at a time until the guard has counted `failures` (the first
    ones may go uncounted while its AMI connection comes up)."""
    for _ in range(failures + 20):
        if guard.failures() >= failures:
            return
        before = guard.failures()
        wrong_register(e2e.config.sip_port, login, workdir)
        deadline = time.monotonic() + 3
        while guard.failures() == before and time.monotonic() < deadline:
            time.sleep(0.05)
    raise AssertionError(f"the guard counted {guard.failures()} failures: {guard.log.read_text()}")


async def test_wrong_passwords_lock_the_login_raise_a_finding_and_block_the_address(
    e2e: E2E, guard: Guard, tmp_path: Path
) -> None:
    await e2e.account("phone-f")
    account = PHONE_ACCOUNTS["phone-f"]
    created = sip_cli(e2e, "create", account)
    login, password = created["username"], created["password"]
    assert e2e.svc.pool is not None
    pool = e2e.svc.pool

    await asyncio.to_thread(attack_until, guard, e2e, login, tmp_path, LOGIN_FAILURES)
    # Exactly at the threshold the login is locked: Asterisk no longer has it.
    assert guard.metric('tollgate_sip_auth_failures_total{kind="bad_password"}') == LOGIN_FAILURES
    deadline = time.monotonic() + 10
    while await pool.fetchval("select status from sip_logins where login = $1", login) != "locked":
        assert time.monotonic() < deadline, guard.log.read_text()
        await asyncio.sleep(0.1)
    # counted once the lock is stored (the scrape may come just before the counter moves)
    while guard.metric('tollgate_sip_lockouts_total{what="login"}') != 1:
        assert time.monotonic() < deadline, guard.log.read_text()
        await asyncio.sleep(0.1)
    assert (
        await pool.fetchval("select count(*) from asterisk.ps_endpoints where id = $1", login) == 0
    )
    reason = await pool.fetchval("select status_reason from sip_logins where login = $1", login)
    assert f"{LOGIN_FAILURES} failed authentications" in reason and ATTACKER in reason, reason
    finding = await pool.fetchrow(
        "select account, subject, severity, evidence from abuse_findings where rule = $1",
        "sip_bruteforce",
    )
    assert finding is not None
    assert (finding["account"], finding["subject"], finding["severity"]) == (
        account,
        login,
        "critical",
    )
    # The right password no longer gets in either.
    ok, diag = await registers(e2e, tmp_path, login, password)
    assert not ok, diag

    # The address keeps trying: blocked at its own threshold, the operator's command run.
    assert guard.metric('tollgate_sip_lockouts_total{what="address"}') == 0
    blocked = None
    for _ in range(ADDRESS_FAILURES + 10):
        await asyncio.to_thread(wrong_register, e2e.config.sip_port, login, tmp_path)
        deadline = time.monotonic() + 2
        while (blocked := await pool.fetchrow("select * from sip_blocked_addresses")) is None:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        if blocked is not None:
            break
    assert blocked is not None, guard.log.read_text()
    assert (str(blocked["address"]), blocked["failures"]) == (ATTACKER, ADDRESS_FAILURES)
    assert login in blocked["logins"]
    assert guard.metric('tollgate_sip_lockouts_total{what="address"}') == 1
    blocked_file = tmp_path / "blocked.txt"
    deadline = time.monotonic() + 10
    while not blocked_file.exists():
        assert time.monotonic() < deadline, guard.log.read_text()
        await asyncio.sleep(0.1)
    assert blocked_file.read_text().split() == [ATTACKER, "3600"]

    # An operator unlocks the login: the right password works again.
    sip_cli(e2e, "enable", login)
    ok, diag = await registers(e2e, tmp_path, login, password)
    assert ok, diag
