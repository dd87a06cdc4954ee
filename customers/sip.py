"""SIP logins of accounts, live in Asterisk through realtime PJSIP (no reload).

A login is a row of `sip_logins` (owner, state, digest credential) plus, while it is active,
its projection into Asterisk's realtime tables (schema `asterisk`: an endpoint, an auth and
an AOR, all named by the login). Asterisk reads those tables on every REGISTER and INVITE,
so creating, disabling or re-keying a login takes effect at the phone's next request.
Registrations (`asterisk.ps_contacts`) are written by Asterisk and only read or cleared
here. Every change is one transaction: the record and its projection never disagree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core.pg import Conn
from customers.sip_secrets import digest_ha1, new_login, new_password
from customers.sip_settings import SipSettings
from rating.account_store import AccountStore

LOGIN_RE = re.compile(r"^[0-9]{4,15}$")
STATUSES = ("active", "disabled", "locked")
_GENERATE_TRIES = 20


class SipError(Exception):
    """A SIP login operation refused; `code` is stable, `field` names the bad input."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message


class SipLoginNotFound(SipError):
    def __init__(self, login: str) -> None:
        super().__init__("SIP_LOGIN_NOT_FOUND", "login", f"no SIP login {login!r}")


@dataclass(frozen=True)
class Registration:
    """One contact Asterisk stored for a registered phone."""

    uri: str
    user_agent: str
    expires_at: datetime | None
    source: str  # address:port the REGISTER came from

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "user_agent": self.user_agent,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class SipLogin:
    login: str
    account: str
    status: str
    max_contacts: int
    status_reason: str
    realm: str
    created_at: datetime
    updated_at: datetime
    registrations: tuple[Registration, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Everything about the login a customer may see; never the credential."""
        return {
            "login": self.login,
            "account": self.account,
            "status": self.status,
            "status_reason": self.status_reason,
            "max_contacts": self.max_contacts,
            "realm": self.realm,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "registrations": [r.as_dict() for r in self.registrations],
        }


@dataclass(frozen=True)
class Credentials:
    """What the phone needs; the password exists only in this object (shown once)."""

    login: SipLogin
    password: str

    def as_dict(self, registrar: str = "") -> dict[str, Any]:
        shown = self.login.as_dict() | {"username": self.login.login, "password": self.password}
        if registrar:
            shown["registrar"] = registrar
        return shown


_COLUMNS = "login, account, status, max_contacts, status_reason, realm, created_at, updated_at"


def _login_of(row: asyncpg.Record, regs: tuple[Registration, ...] = ()) -> SipLogin:
    return SipLogin(
        login=row["login"],
        account=row["account"],
        status=row["status"],
        max_contacts=row["max_contacts"],
        status_reason=row["status_reason"],
        realm=row["realm"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        registrations=regs,
    )


def check_login(login: str) -> str:
    if not LOGIN_RE.match(login):
        raise SipError("BAD_SIP_LOGIN", "login", f"4 to 15 digits expected, got {login!r}")
    return login


def check_max_contacts(value: int) -> int:
    if not 1 <= value <= 100:
        raise SipError("BAD_SIP_LOGIN", "max_contacts", f"1..100 expected, got {value}")
    return value


async def _check_account(conn: Conn, account: str) -> None:
    status = await conn.fetchval("select status from accounts where id = $1", account)
    if status is None:
        raise SipError("UNKNOWN_ACCOUNT", "account", f"no account {account!r}")
    if status == "closed":
        raise SipError("ACCOUNT_CLOSED", "account", f"account {account!r} is closed")


async def create(
    conn: Conn,
    settings: SipSettings,
    account: str,
    login: str | None = None,
    max_contacts: int = 1,
) -> Credentials:
    """A new active login for `account` (a generated 7-digit one unless `login` is given)
    with a generated password, live in Asterisk as soon as this returns."""
    check_max_contacts(max_contacts)
    if login is not None:
        check_login(login)
    async with conn.transaction():
        await _check_account(conn, account)
        for _ in range(1 if login is not None else _GENERATE_TRIES):
            candidate = login if login is not None else new_login()
            password = new_password()
            row = await conn.fetchrow(
                "insert into sip_logins (login, account, digest_ha1, realm, max_contacts)"
                " values ($1, $2, $3, $4, $5) on conflict (login) do nothing"
                f" returning {_COLUMNS}",
                candidate,
                account,
                digest_ha1(candidate, settings.realm, password),
                settings.realm,
                max_contacts,
            )
            if row is not None:
                await _project(conn, settings, candidate)
                return Credentials(_login_of(row), password)
        if login is not None:
            raise SipError("SIP_LOGIN_EXISTS", "login", f"SIP login {login!r} exists already")
        raise SipError("SIP_LOGIN_EXISTS", "login", "no free login found; pass --login")


async def _project(conn: Conn, settings: SipSettings, login: str) -> None:
    """Write the login's endpoint, auth and AOR for Asterisk (replacing any)."""
    row = await conn.fetchrow(
        "select account, digest_ha1, realm, max_contacts from sip_logins where login = $1",
        login,
    )
    assert row is not None
    await _unproject(conn, login, contacts=False)
    yn = {True: "yes", False: "no"}
    await conn.execute(
        "insert into asterisk.ps_endpoints (id, transport, aors, auth, context, disallow,"
        " allow, direct_media, accountcode, force_rport, rewrite_contact, rtp_symmetric,"
        " timers, allow_subscribe, dtmf_mode, identify_by, allow_transfer)"
        " values ($1, $2, $1, $1, $3, 'all', $4, 'no', $5, 'yes', 'yes', 'yes', $6, 'no',"
        " 'rfc4733', 'username', 'no')",
        login,
        settings.transport or None,
        settings.context,
        settings.codecs,
        row["account"],
        yn[settings.timers],
    )
    await conn.execute(
        "insert into asterisk.ps_auths (id, auth_type, username, realm, md5_cred)"
        " values ($1, 'md5', $1, $2, $3)",
        login,
        row["realm"],
        row["digest_ha1"],
    )
    # remove_existing: a phone that registers again replaces its old contact instead of
    # being refused once max_contacts is reached (phones reboot without unregistering).
    await conn.execute(
        "insert into asterisk.ps_aors (id, max_contacts, remove_existing, default_expiration,"
        " minimum_expiration, maximum_expiration, qualify_frequency)"
        " values ($1, $2, 'yes', 600, 60, 3600, 0)",
        login,
        row["max_contacts"],
    )


async def _unproject(conn: Conn, login: str, contacts: bool = True) -> None:
    for table in ("ps_endpoints", "ps_auths", "ps_aors"):
        await conn.execute(f"delete from asterisk.{table} where id = $1", login)
    if contacts:
        await drop_registrations(conn, login)


async def drop_registrations(conn: Conn, login: str) -> int:
    """Forget the login's registrations: calls to it fail until the phone registers again."""
    result = await conn.execute("delete from asterisk.ps_contacts where endpoint = $1", login)
    return int(result.split()[-1])


async def _locked_row(conn: Conn, login: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"select {_COLUMNS} from sip_logins where login = $1 for update", login
    )
    if row is None:
        raise SipLoginNotFound(login)
    return row


async def registrations(conn: Conn, login: str, now: datetime) -> tuple[Registration, ...]:
    rows = await conn.fetch(
        "select uri, user_agent, expiration_time, via_addr, via_port from asterisk.ps_contacts"
        " where endpoint = $1 and coalesce(expiration_time, 0) > $2 order by id",
        login,
        int(now.timestamp()),
    )
    return tuple(
        Registration(
            uri=r["uri"] or "",
            user_agent=r["user_agent"] or "",
            expires_at=(
                datetime.fromtimestamp(r["expiration_time"], UTC) if r["expiration_time"] else None
            ),
            source=f"{r['via_addr']}:{r['via_port']}" if r["via_addr"] else "",
        )
        for r in rows
    )


async def get(conn: Conn, login: str, now: datetime) -> SipLogin:
    row = await conn.fetchrow(f"select {_COLUMNS} from sip_logins where login = $1", login)
    if row is None:
        raise SipLoginNotFound(login)
    return _login_of(row, await registrations(conn, login, now))


async def list_logins(conn: Conn, now: datetime, account: str | None = None) -> list[SipLogin]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from sip_logins where $1::text is null or account = $1"
        " order by account, login",
        account,
    )
    return [_login_of(r, await registrations(conn, r["login"], now)) for r in rows]


async def set_password(conn: Conn, settings: SipSettings, login: str) -> Credentials:
    """A new generated password; the old one stops working and the phones registered with
    it are forgotten (a leaked password must not keep receiving calls)."""
    password = new_password()
    async with conn.transaction():
        old = await _locked_row(conn, login)
        row = await conn.fetchrow(
            "update sip_logins set digest_ha1 = $2, realm = $3, updated_at = now()"
            f" where login = $1 returning {_COLUMNS}",
            login,
            digest_ha1(login, settings.realm, password),
            settings.realm,
        )
        assert row is not None
        await drop_registrations(conn, login)
        if old["status"] == "active":
            await _project(conn, settings, login)
    return Credentials(_login_of(row), password)


async def set_status(
    conn: Conn, settings: SipSettings, login: str, status: str, reason: str = ""
) -> SipLogin:
    """active: Asterisk accepts the login again; disabled/locked: its next REGISTER or
    INVITE is refused and its registrations are dropped."""
    if status not in STATUSES:
        raise SipError("BAD_SIP_LOGIN", "status", f"one of {', '.join(STATUSES)}")
    async with conn.transaction():
        await _locked_row(conn, login)
        row = await conn.fetchrow(
            "update sip_logins set status = $2, status_reason = $3, updated_at = now()"
            f" where login = $1 returning {_COLUMNS}",
            login,
            status,
            reason,
        )
        assert row is not None
        if status == "active":
            await _project(conn, settings, login)
        else:
            await _unproject(conn, login)
    return _login_of(row)


async def delete(conn: Conn, login: str) -> str:
    """Delete the login; returns its account."""
    async with conn.transaction():
        row = await _locked_row(conn, login)
        await _unproject(conn, login)
        await conn.execute("delete from sip_logins where login = $1", login)
    account: str = row["account"]
    return account


async def publish(accounts: AccountStore, account: str) -> None:
    """Mirror the account to Redis after a change of its logins: the database keeps the
    account's list of active logins (`accounts.sip_logins`), the inbound authorization reads
    it there to name what rings. A mirror missed (Redis away) is mended by the start-up
    repair, which compares every mirrored setting."""
    await accounts.mirror(await accounts.get(account))


async def resync(conn: Conn, settings: SipSettings) -> int:
    """Rewrite every active login's projection (after the endpoint settings changed, or
    Asterisk's tables were restored); returns how many."""
    async with conn.transaction():
        logins = [
            r["login"]
            for r in await conn.fetch(
                "select login from sip_logins where status = 'active' order by login for update"
            )
        ]
        for login in logins:
            await _project(conn, settings, login)
    return len(logins)
