"""SIP logins on the real PostgreSQL: the record, its projection into Asterisk's realtime
tables (what Asterisk will read on the next REGISTER/INVITE), the CLI's errors and the panel
endpoints (operators manage, customers only see their own, never a password)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from customers import sip
from customers.sip_settings import SipSettings
from panel_api.tokens import Role
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import bearer, token

SETTINGS = SipSettings(realm="tollgate-test", context="tollgate-outbound", codecs="alaw,ulaw")
NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # pinned: registrations are read as of it


def ha1(login: str, password: str, realm: str = "tollgate-test") -> str:
    return hashlib.md5(f"{login}:{realm}:{password}".encode()).hexdigest()


async def projection(svc: Services, login: str) -> dict[str, dict[str, Any] | None]:
    assert svc.pool is not None
    out: dict[str, dict[str, Any] | None] = {}
    for table in ("ps_endpoints", "ps_auths", "ps_aors"):
        row = await svc.pool.fetchrow(f"select * from asterisk.{table} where id = $1", login)
        out[table] = dict(row) if row else None
    return out


async def register(svc: Services, login: str, expires: datetime, n: int = 0) -> None:
    """What Asterisk writes when the phone registers."""
    assert svc.pool is not None
    await svc.pool.execute(
        "insert into asterisk.ps_contacts (id, uri, expiration_time, endpoint, via_addr,"
        " via_port, user_agent) values ($1, $2, $3, $4, '192.0.2.7', 5062, 'phone/1.0')",
        f"{login};@{n}",
        f"sip:{login}@192.0.2.7:5062",
        int(expires.timestamp()),
        login,
    )


async def test_create_projects_an_endpoint_asterisk_can_authenticate(
    svc: Services, make_account: AccountFactory
) -> None:
    account = await make_account()
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        creds = await sip.create(conn, SETTINGS, account.id, max_contacts=2)
    login = creds.login.login
    assert len(login) == 7 and login.isdigit() and login[0] != "0"
    pw = creds.password
    assert len(pw) == 20 and pw.isalnum() and not pw.isdigit() and pw.lower() != pw
    rows = await projection(svc, login)
    endpoint, auth, aor = rows["ps_endpoints"], rows["ps_auths"], rows["ps_aors"]
    assert endpoint and auth and aor
    assert (endpoint["accountcode"], endpoint["context"], endpoint["auth"], endpoint["aors"]) == (
        account.id,
        "tollgate-outbound",
        login,
        login,
    )
    assert (endpoint["allow"], endpoint["disallow"], endpoint["direct_media"]) == (
        "alaw,ulaw",
        "all",
        "no",
    )
    # Only the digest credential is stored, never the password.
    assert (auth["auth_type"], auth["username"], auth["realm"]) == ("md5", login, "tollgate-test")
    assert auth["md5_cred"] == ha1(login, pw) and auth["password"] is None
    stored = await svc.pool.fetchval("select digest_ha1 from sip_logins where login = $1", login)
    assert stored == ha1(login, pw)
    assert pw not in str(await svc.pool.fetch("select * from sip_logins"))
    assert (aor["max_contacts"], aor["remove_existing"]) == (2, "yes")


async def test_bad_input_is_refused_by_field_and_nothing_is_written(
    svc: Services, make_account: AccountFactory
) -> None:
    account = await make_account()
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await sip.create(conn, SETTINGS, account.id, login="1234567")
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"account": account.id, "login": "1234567"}, "SIP_LOGIN_EXISTS", "login"),
            ({"account": account.id, "login": "12ab"}, "BAD_SIP_LOGIN", "login"),
            ({"account": account.id, "login": "123"}, "BAD_SIP_LOGIN", "login"),
            ({"account": account.id, "max_contacts": 0}, "BAD_SIP_LOGIN", "max_contacts"),
            ({"account": "nobody"}, "UNKNOWN_ACCOUNT", "account"),
        ]
        for kwargs, code, field in cases:
            with pytest.raises(sip.SipError) as err:
                await sip.create(conn, SETTINGS, **kwargs)
            assert (err.value.code, err.value.field) == (code, field), kwargs
        assert await conn.fetchval("select count(*) from sip_logins") == 1
        assert await conn.fetchval("select count(*) from asterisk.ps_endpoints") == 1
        with pytest.raises(sip.SipLoginNotFound):
            await sip.set_status(conn, SETTINGS, "7654321", "disabled")


async def test_disable_enable_passwd_delete_keep_asterisk_in_step(
    svc: Services, make_account: AccountFactory
) -> None:
    account = await make_account()
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        creds = await sip.create(conn, SETTINGS, account.id)
        login = creds.login.login
        await register(svc, login, NOW.replace(hour=2))
        await register(svc, login, NOW.replace(hour=1, minute=0), n=1)  # expired before NOW
        shown = await sip.get(conn, login, NOW)
        assert [r.source for r in shown.registrations] == ["192.0.2.7:5062"]

        disabled = await sip.set_status(conn, SETTINGS, login, "disabled", "unpaid")
        assert (disabled.status, disabled.status_reason) == ("disabled", "unpaid")
        assert set((await projection(svc, login)).values()) == {None}
        assert (await sip.get(conn, login, NOW)).registrations == ()

        await sip.set_status(conn, SETTINGS, login, "active")
        rows = await projection(svc, login)
        assert rows["ps_auths"] and rows["ps_auths"]["md5_cred"] == ha1(login, creds.password)

        await register(svc, login, NOW.replace(hour=2))
        renewed = await sip.set_password(conn, SETTINGS, login)
        assert renewed.password != creds.password
        rows = await projection(svc, login)
        assert rows["ps_auths"] and rows["ps_auths"]["md5_cred"] == ha1(login, renewed.password)
        # the phones registered with the old password are forgotten
        assert (await sip.get(conn, login, NOW)).registrations == ()

        # a locked or disabled login gets a new password but stays out of Asterisk
        await sip.set_status(conn, SETTINGS, login, "locked", "brute force")
        await sip.set_password(conn, SETTINGS, login)
        assert set((await projection(svc, login)).values()) == {None}

        await sip.delete(conn, login)
        assert await sip.list_logins(conn, NOW, account.id) == []
        assert set((await projection(svc, login)).values()) == {None}


def test_cli_errors_are_one_line_with_exit_2(settings: Settings) -> None:
    env = {"TOLLGATE_PG_DSN": settings.pg_dsn, "TOLLGATE_REDIS_URL": settings.redis_url}
    cases = (
        (["create", "nobody"], "account: no account 'nobody'"),
        (["create", "nobody", "--login", "12x"], "login: 4 to 15 digits expected"),
        (["show", "7654321"], "login: no SIP login '7654321'"),
    )
    for args, message in cases:
        res = subprocess.run(
            [sys.executable, "-m", "tollgate.cli", "sip", *args],
            env={**_base_env(), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("tollgate: ") and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}


async def test_panel_operators_manage_and_customers_only_see_their_own(
    panel: PanelFactory, svc: Services, make_account: AccountFactory
) -> None:
    mine = await make_account()
    other = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    cust = bearer(await token(svc, Role.CUSTOMER, mine.id))
    client = await panel()
    created = await client.post(
        f"/api/v1/accounts/{mine.id}/sip-logins", json={"login": "2223334"}, headers=op
    )
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["username"] == "2223334" and len(body["password"]) == 20

    # the customer sees the login, never a password
    listed = await client.get(f"/api/v1/accounts/{mine.id}/sip-logins", headers=cust)
    assert listed.status == 200
    items = (await listed.json())["items"]
    assert [i["login"] for i in items] == ["2223334"]
    assert "password" not in items[0] and body["password"] not in await listed.text()
    other_logins = f"/api/v1/accounts/{other.id}/sip-logins"
    resp = await client.get(other_logins, headers=cust)
    assert resp.status == 404  # as if it did not exist
    for method, path in (
        ("POST", other_logins),
        ("POST", f"/api/v1/accounts/{mine.id}/sip-logins"),
        ("POST", "/api/v1/sip-logins/2223334/disable"),
        ("POST", "/api/v1/sip-logins/2223334/password"),
        ("DELETE", "/api/v1/sip-logins/2223334"),
    ):
        resp = await client.request(method, path, headers=cust, json={})
        assert resp.status == 403, (method, path)

    again = await client.post(
        f"/api/v1/accounts/{mine.id}/sip-logins", json={"login": "2223334"}, headers=op
    )
    assert again.status == 409 and (await again.json())["error"]["code"] == "SIP_LOGIN_EXISTS"
    bad = await client.post(
        f"/api/v1/accounts/{mine.id}/sip-logins", json={"max_contacts": 0}, headers=op
    )
    assert bad.status == 400 and "max_contacts" in await bad.text()

    disabled = await client.post(
        "/api/v1/sip-logins/2223334/disable", json={"reason": "fraud"}, headers=op
    )
    assert disabled.status == 200
    assert (await disabled.json())["status"] == "disabled"
    assert set((await projection(svc, "2223334")).values()) == {None}
    enabled = await client.post("/api/v1/sip-logins/2223334/enable", headers=op)
    assert (await enabled.json())["status"] == "active"
    pw = await client.post("/api/v1/sip-logins/2223334/password", headers=op)
    assert (await pw.json())["password"] != body["password"]
    shown = await client.get("/api/v1/sip-logins/2223334", headers=op)
    assert "password" not in await shown.json()
    gone = await client.delete("/api/v1/sip-logins/2223334", headers=op)
    assert gone.status == 204
    missing = await client.get("/api/v1/sip-logins/2223334", headers=op)
    assert missing.status == 404
