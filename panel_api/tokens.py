"""API tokens: a random secret given once to its holder; only its SHA-256 is stored.

A customer token reads one account; an operator token manages all of them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from core.pg import Conn
from rating.accounts import AccountNotFound


class Role(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"


CUSTOMER_DAYS = 90  # a customer token's life unless its creator asks otherwise


def expiry(role: Role, now: datetime, days: int | None = None) -> datetime | None:
    """When a token made at `now` expires: `days` from now (0 = never, operators only),
    customers by default after CUSTOMER_DAYS, operators by default never."""
    if days is None:
        days = CUSTOMER_DAYS if role is Role.CUSTOMER else 0
    if days < 0:
        raise TokenError("expires_days", "must be >= 0")
    if days == 0:
        if role is Role.CUSTOMER:
            raise TokenError("expires_days", "a customer token must expire")
        return None
    return now + timedelta(days=days)


class TokenError(ValueError):
    """A token cannot be made as asked; `field` names the culprit."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class TokenNotFound(LookupError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"no token {token_id!r}")
        self.token_id = token_id


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    role: Role
    account: str | None
    label: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    rotated_from: str | None = None
    read_only: bool = False  # an operator who may look but not change (support)
    login: str | None = None  # the login this session token was given to at sign-in

    @property
    def actor(self) -> str:
        """Who acts with this token, for the record."""
        return self.login or self.label or self.id

    def may_read(self, account: str) -> bool:
        return self.role is Role.OPERATOR or self.account == account

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role.value,
            "account": self.account,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "rotated_from": self.rotated_from,
            "read_only": self.read_only,
            "login": self.login,
        }


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _token(row: asyncpg.Record) -> Token:
    return Token(
        row["id"],
        Role(row["role"]),
        row["account"],
        row["label"],
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"],
        row["expires_at"],
        row["rotated_from"],
        row["read_only"],
        row["login"],
    )


_LIVE = "revoked_at is null and (expires_at is null or expires_at > $2)"


class TokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self,
        role: Role,
        account: str | None = None,
        label: str = "",
        *,
        now: datetime | None = None,
        days: int | None = None,
        read_only: bool = False,
        login: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret exists outside its holder);
        it expires `days` after `now` (see `expiry`), or at `expires_at` (a session's)."""
        if role is Role.CUSTOMER and not account:
            raise TokenError("account", "a customer token needs an account")
        if role is Role.OPERATOR and account:
            raise TokenError("account", "an operator token is not bound to an account")
        if read_only and role is not Role.OPERATOR:
            raise TokenError("read_only", "only an operator token can be read-only")
        if expires_at is None:
            expires_at = expiry(role, now or datetime.now(UTC), days)
        async with self.pool.acquire() as conn:
            return await _insert(
                conn, role, account, label, expires_at, None, read_only=read_only, login=login
            )

    async def rotate(
        self, token_id: str, *, now: datetime, days: int | None = None
    ) -> tuple[Token, str]:
        """A new token with the old one's role, account and label; the old one is revoked in
        the same transaction. A revoked or expired token cannot be rotated."""
        async with self.pool.acquire() as conn, conn.transaction():
            old = await conn.fetchrow(
                f"select * from panel_tokens where id = $1 and {_LIVE} for update", token_id, now
            )
            if old is None:
                raise TokenNotFound(token_id)
            role = Role(old["role"])
            made = await _insert(
                conn,
                role,
                old["account"],
                old["label"],
                expiry(role, now, days),
                token_id,
                read_only=old["read_only"],
                login=old["login"],
            )
            await conn.execute(
                "update panel_tokens set revoked_at = $2 where id = $1", token_id, now
            )
        return made

    async def authenticate(self, secret: str, now: datetime) -> Token | None:
        """The live token whose secret this is, or None (unknown, revoked or expired)."""
        row = await self.pool.fetchrow(
            f"select * from panel_tokens where secret_sha256 = $1 and {_LIVE}", digest(secret), now
        )
        return None if row is None else _token(row)

    async def live(self, token_id: str, now: datetime) -> Token | None:
        """The token `token_id` if it is still good at `now` (not revoked, not expired)."""
        row = await self.pool.fetchrow(
            f"select * from panel_tokens where id = $1 and {_LIVE}", token_id, now
        )
        return None if row is None else _token(row)

    async def revoke(self, token_id: str) -> Token:
        row = await self.pool.fetchrow(
            "update panel_tokens set revoked_at = coalesce(revoked_at, now())"
            " where id = $1 returning *",
            token_id,
        )
        if row is None:
            raise TokenNotFound(token_id)
        return _token(row)

    async def all(self, account: str | None = None) -> list[Token]:
        rows = await self.pool.fetch(
            "select * from panel_tokens where ($1::text is null or account = $1)"
            " order by created_at, id",
            account,
        )
        return [_token(r) for r in rows]

    async def touch(self, token_ids: list[str]) -> None:
        await self.pool.execute(
            "update panel_tokens set last_used_at = now() where id = any($1::text[])", token_ids
        )


async def _insert(
    conn: Conn,
    role: Role,
    account: str | None,
    label: str,
    expires_at: datetime | None,
    rotated_from: str | None,
    *,
    read_only: bool = False,
    login: str | None = None,
) -> tuple[Token, str]:
    secret = "tgp_" + secrets.token_urlsafe(32)  # 256 bits; the prefix makes leaks greppable
    token_id = "tok_" + secrets.token_hex(8)
    try:
        row = await conn.fetchrow(
            "insert into panel_tokens"
            " (id, secret_sha256, role, account, label, expires_at, rotated_from, read_only,"
            " login) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning *",
            token_id,
            digest(secret),
            role.value,
            account,
            label,
            expires_at,
            rotated_from,
            read_only,
            login,
        )
    except asyncpg.ForeignKeyViolationError:
        raise AccountNotFound(account or "") from None
    assert row is not None  # returning * always yields the row
    return _token(row), secret


class LastUsed:
    """Which tokens were used lately, written to PostgreSQL in batches (not per request)."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self._seen: set[str] = set()

    def saw(self, token_id: str) -> None:
        self._seen.add(token_id)

    async def flush(self) -> int:
        seen, self._seen = self._seen, set()
        if seen:
            await self.store.touch(sorted(seen))
        return len(seen)
