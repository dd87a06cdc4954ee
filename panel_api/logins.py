"""Sign-in with a login and a password: argon2id hashes (argon2-cffi), a lockout after too
many failures in a row, and a short-lived panel token for the session.

The password is checked in a worker thread (argon2 costs tens of milliseconds of CPU on
purpose; the event loop must not stall meanwhile). An unknown login costs the same check
against a fixed hash, so the answer's timing does not tell which logins exist; wrong login
and wrong password get the same answer."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from panel_api.tokens import Role, Token, TokenStore
from rating.accounts import AccountNotFound

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; a bound keeps a request's cost bounded
HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 "low memory") defaults
_DUMMY = HASHER.hash("a password nobody has")


class LoginRole(StrEnum):
    CUSTOMER = "customer"
    SUPPORT = "support"  # an operator who reads only
    ADMIN = "admin"


class LoginError(ValueError):
    """A login cannot be set as asked; `field` names the culprit."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class WrongCredentials(Exception):
    """Wrong login or password (which of the two is not said)."""


class LoginLocked(Exception):
    def __init__(self, login: str, retry_after_s: int) -> None:
        super().__init__(f"login {login!r} is locked for {retry_after_s} s")
        self.login = login
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    failures: int = 5  # failures in a row that lock a login
    lock_s: int = 900  # for this long
    session_s: int = 8 * 3600  # life of a session token


@dataclass(frozen=True, slots=True)
class Login:
    login: str
    role: LoginRole
    account: str | None
    failures: int
    locked_until: datetime | None
    created_at: datetime
    email: str | None = None  # where a password reset is sent (else the customer's)

    def as_dict(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "role": self.role.value,
            "account": self.account,
            "email": self.email,
            "failures": self.failures,
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Session:
    token: Token
    secret: str


def _login(row: asyncpg.Record) -> Login:
    return Login(
        row["login"],
        LoginRole(row["role"]),
        row["account"],
        row["failures"],
        row["locked_until"],
        row["created_at"],
        row["email"],
    )


def normalise(login: str) -> str:
    return login.strip().lower()


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise LoginError("password", f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise LoginError("password", f"at most {MAX_PASSWORD} characters")
    return password


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


class LoginStore:
    def __init__(self, pool: asyncpg.Pool, policy: LoginPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or LoginPolicy()

    async def set(
        self,
        login: str,
        role: LoginRole,
        password: str,
        account: str | None = None,
        email: str | None = None,
    ) -> Login:
        """Create a login or give it a new password (and role); its lock is lifted. An
        e-mail given replaces the login's; none keeps it."""
        name = normalise(login)
        if not LOGIN.match(name):
            raise LoginError("login", "3-64 of a-z 0-9 . _ @ -, starting with a letter or digit")
        if (role is LoginRole.CUSTOMER) != (account is not None):
            raise LoginError("account", "a customer login needs an account; an operator's none")
        if email is not None and not EMAIL.match(email.strip()):
            raise LoginError("email", "an address like name@example.pl")
        hashed = await asyncio.to_thread(HASHER.hash, check_password(password))
        try:
            row = await self.pool.fetchrow(
                "insert into panel_logins (login, role, account, password_hash, email)"
                " values ($1, $2, $3, $4, $5) on conflict (login) do update set"
                " role = excluded.role, account = excluded.account,"
                " password_hash = excluded.password_hash, failures = 0, locked_until = null,"
                " email = coalesce(excluded.email, panel_logins.email),"
                " password_set_at = now() returning *",
                name,
                role.value,
                account,
                hashed,
                None if email is None else email.strip(),
            )
        except asyncpg.ForeignKeyViolationError:
            raise AccountNotFound(account or "") from None
        assert row is not None
        return _login(row)

    async def all(self) -> list[Login]:
        return [_login(r) for r in await self.pool.fetch("select * from panel_logins order by 1")]

    async def sign_in(
        self, login: str, password: str, now: datetime, tokens: TokenStore
    ) -> Session:
        """The session token for a right login and password; WrongCredentials or LoginLocked."""
        name = normalise(login)
        row = await self.pool.fetchrow("select * from panel_logins where login = $1", name)
        if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
            raise LoginLocked(name, _seconds(row["locked_until"] - now))
        hashed = row["password_hash"] if row is not None else _DUMMY
        good = await asyncio.to_thread(_verify, hashed, password[:MAX_PASSWORD])
        if row is None:
            raise WrongCredentials()
        if not good:
            await self._failed(name, now)
            raise WrongCredentials()
        await self.pool.execute(
            "update panel_logins set failures = 0, locked_until = null where login = $1", name
        )
        found = _login(row)
        role = Role.CUSTOMER if found.role is LoginRole.CUSTOMER else Role.OPERATOR
        token, secret = await tokens.create(
            role,
            found.account,
            f"session:{name}",
            read_only=found.role is LoginRole.SUPPORT,
            login=name,
            expires_at=now + timedelta(seconds=self.policy.session_s),
        )
        return Session(token, secret)

    async def _failed(self, name: str, now: datetime) -> None:
        """One more failure; the one that reaches the limit locks the login."""
        await self.pool.execute(
            "update panel_logins set"
            " failures = case when failures + 1 >= $2 then 0 else failures + 1 end,"
            " locked_until = case when failures + 1 >= $2 then $3 else locked_until end"
            " where login = $1",
            name,
            self.policy.failures,
            now + timedelta(seconds=self.policy.lock_s),
        )


def _seconds(left: timedelta) -> int:
    return max(1, int(left.total_seconds() + 0.999))
