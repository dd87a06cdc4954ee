"""API tokens: a random secret given once to its holder; only its SHA-256 is stored.

A customer token reads one account; an operator token manages all of them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from rating.accounts import AccountNotFound


class Role(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"


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
    )


class TokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self, role: Role, account: str | None = None, label: str = ""
    ) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret exists outside its holder)."""
        if role is Role.CUSTOMER and not account:
            raise TokenError("account", "a customer token needs an account")
        if role is Role.OPERATOR and account:
            raise TokenError("account", "an operator token is not bound to an account")
        secret = "tgp_" + secrets.token_urlsafe(32)  # 256 bits; the prefix makes leaks greppable
        token_id = "tok_" + secrets.token_hex(8)
        try:
            row = await self.pool.fetchrow(
                "insert into panel_tokens (id, secret_sha256, role, account, label)"
                " values ($1, $2, $3, $4, $5) returning *",
                token_id,
                digest(secret),
                role.value,
                account,
                label,
            )
        except asyncpg.ForeignKeyViolationError:
            raise AccountNotFound(account or "") from None
        assert row is not None  # returning * always yields the row
        return _token(row), secret

    async def authenticate(self, secret: str) -> Token | None:
        """The live token whose secret this is, or None (unknown or revoked)."""
        row = await self.pool.fetchrow(
            "select * from panel_tokens where secret_sha256 = $1 and revoked_at is null",
            digest(secret),
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
