"""The SIP guard on the real PostgreSQL: failures counted per login and per address in a
sliding window (pinned instants), a login locked with a finding at its threshold, an
address blocked (recorded, the operator's command run) at its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from abuse.sip_guard import GuardMetrics, GuardSettings, SipGuard, Window
from core.env import SettingsError
from customers import sip
from customers.sip_settings import SipSettings
from runtime.services import Services
from tests.conftest import AccountFactory

T0 = 1_774_747_800_000  # 2026-03-29 01:30 UTC, in ms
NOW = datetime.fromtimestamp(T0 / 1000, UTC)
SIP = SipSettings()


async def test_a_login_is_locked_at_its_threshold_within_the_window(
    svc: Services, make_account: AccountFactory, tmp_path: Path
) -> None:
    assert svc.pool is not None
    account = await make_account()
    async with svc.pool.acquire() as conn:
        login = (await sip.create(conn, SIP, account.id)).login.login
    metrics = GuardMetrics(CollectorRegistry())
    marker = tmp_path / "blocked"
    settings = GuardSettings(
        login_failures=3,
        address_failures=5,
        window_s=60,
        block_s=600,
        block_command=f"sh -c 'echo {{address}} {{seconds}} > {marker}'",
    )
    guard = SipGuard(svc.pool, settings, SIP, metrics, svc.accounts)
    await sip.publish(svc.accounts, account.id)
    ring = svc.settings.keyspace.account(account.id)
    assert await svc.redis.hget(ring, "sip_logins") == login.encode()

    # two failures, then a third after the window moved past the first: no lock yet
    assert await guard.observe("bad_password", login, "192.0.2.1", T0) == []
    assert await guard.observe("bad_password", login, "192.0.2.2", T0 + 30_000) == []
    assert await guard.observe("bad_password", login, "192.0.2.3", T0 + 61_000) == []
    # the third within 60 s of the second locks it
    done = await guard.observe("bad_password", login, "192.0.2.3", T0 + 62_000)
    assert done == [f"login:{login}"]
    async with svc.pool.acquire() as conn:
        locked = await sip.get(conn, login, NOW)
        assert locked.status == "locked" and "192.0.2.3" in locked.status_reason
        assert await conn.fetchval("select count(*) from asterisk.ps_auths") == 0
        finding = await conn.fetchrow("select * from abuse_findings where rule = 'sip_bruteforce'")
    # inbound calls no longer name it
    assert await svc.redis.hget(ring, "sip_logins") == b""
    assert finding is not None
    assert (finding["account"], finding["subject"], finding["severity"]) == (
        account.id,
        login,
        "critical",
    )
    assert metrics.registry.get_sample_value("tollgate_sip_lockouts_total", {"what": "login"}) == 1
    # unknown logins lock nothing (nothing to lock) but count for the address: with the two
    # failures above, the third makes five
    for i in range(3):
        done = await guard.observe("unknown_login", f"guess{i}", "192.0.2.3", T0 + 63_000 + i)
    assert done == ["address:192.0.2.3"]
    row = await svc.pool.fetchrow("select * from sip_blocked_addresses")
    assert row is not None and str(row["address"]) == "192.0.2.3" and row["failures"] == 5
    assert (row["until"] - row["blocked_at"]).total_seconds() == 600
    assert marker.read_text().split() == ["192.0.2.3", "600"]
    assert (
        metrics.registry.get_sample_value(
            "tollgate_sip_auth_failures_total", {"kind": "unknown_login"}
        )
        == 3
    )


async def test_trusted_addresses_are_never_blocked_and_quiet_keys_are_forgotten(
    svc: Services,
) -> None:
    assert svc.pool is not None
    settings = GuardSettings(address_failures=2, window_s=60, trusted=("10.1.0.0/16",))
    guard = SipGuard(svc.pool, settings, SIP, GuardMetrics(CollectorRegistry()))
    for i in range(5):  # an SBC in front of Asterisk: every phone behind it fails from here
        assert await guard.observe("unknown_login", f"x{i}", "10.1.2.3", T0 + i) == []
    assert await svc.pool.fetchval("select count(*) from sip_blocked_addresses") == 0
    assert await guard.observe("unknown_login", "y", "192.0.2.9", T0) == []
    assert await guard.observe("unknown_login", "z", "192.0.2.9", T0 + 1) == ["address:192.0.2.9"]

    window = Window(window_s=60, max_keys=3)
    for i in range(3):
        window.add(f"guess{i}", T0)
    window.add("late", T0 + 61_000)  # the table is full: the quiet keys go first
    assert set(window.seen) == {"late"}
    assert window.add("late", T0 + 62_000) == 2


def test_a_trusted_entry_that_is_no_address_is_refused_by_name() -> None:
    with pytest.raises(SettingsError) as err:
        GuardSettings.from_env({"TOLLGATE_SIP_GUARD_TRUSTED": "10.0.0.0/8, sbc.example"})
    assert err.value.variable == "TOLLGATE_SIP_GUARD_TRUSTED"
    parsed = GuardSettings.from_env({"TOLLGATE_SIP_GUARD_TRUSTED": "10.0.0.0/8, 192.0.2.1"})
    assert parsed.trusted == ("10.0.0.0/8", "192.0.2.1")
