"""Password reset by e-mail: a request names a login or an e-mail address and gets the same
answer whether or not it exists; a login it matches gets a single-use, expiring link by
mail (through the outbox, so a mail server down never holds the request). Using the link
sets the new password, lifts a lockout and ends every session of the login.

Only the SHA-256 of a reset secret is kept (256 random bits: a fast hash is enough, there is
nothing to guess). Issuing is limited per login and hour, so nobody can flood a mailbox;
the per-address guard of the sign-in limits how many requests one client makes."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from core.pg import Conn
from notify.outbox import enqueue
from panel_api.logins import HASHER, check_password, normalise
from panel_api.reset_mail import language_of, link, reset_mail

SCRUBBED = "(removed: the link in this message was used or replaced)"


@dataclass(frozen=True, slots=True)
class ResetPolicy:
    ttl_s: int = 3600  # a link's life
    per_hour: int = 3  # links one login may be sent per hour


class ResetRefused(Exception):
    """The reset link cannot be used; `code` says why (unknown, used, expired)."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.field = "token"
        self.why = why


@dataclass(frozen=True, slots=True)
class Issued:
    login: str
    account: str | None
    recipient: str  # for the audit record only: never in an answer


@dataclass(frozen=True, slots=True)
class Done:
    login: str
    account: str | None
    sessions_ended: int


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


# A login matches by its name, by its own e-mail, or (having none) by its customer's e-mail.
_MATCH = (
    "select l.login, l.account, coalesce(l.email, c.email) as recipient, c.language"
    " from panel_logins l left join accounts a on a.id = l.account"
    " left join customers c on c.id = a.customer_id"
    " where l.login = $1 or lower(l.email) = $1 or (l.email is null and lower(c.email) = $1)"
    " order by l.login limit 20"
)


class PasswordResets:
    def __init__(self, pool: asyncpg.Pool, policy: ResetPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or ResetPolicy()

    async def request(
        self, who: str, public_url: str, language: str | None, now: datetime
    ) -> list[Issued]:
        """Mail a reset link to each login `who` names (a login or an e-mail address); what
        was issued is for the audit log, never for the one who asked."""
        issued: list[Issued] = []
        wanted = normalise(who).replace("\x00", "")  # PostgreSQL text holds no NUL
        for row in await self.pool.fetch(_MATCH, wanted):
            if not row["recipient"]:
                continue
            lang = row["language"] if row["language"] else language_of(language)
            async with self.pool.acquire() as conn, conn.transaction():
                if await self._issue(conn, row, public_url, lang, now):
                    issued.append(Issued(row["login"], row["account"], row["recipient"]))
        return issued

    async def _issue(
        self, conn: Conn, row: asyncpg.Record, public_url: str, language: str, now: datetime
    ) -> bool:
        login = row["login"]
        # the login's row lock makes the count and the insert one step per login
        await conn.execute("select 1 from panel_logins where login = $1 for update", login)
        recent = await conn.fetchval(
            "select count(*) from panel_password_resets where login = $1 and created_at > $2",
            login,
            now - timedelta(hours=1),
        )
        if recent >= self.policy.per_hour:
            return False
        await conn.execute(
            "update panel_password_resets set used_at = $2 where login = $1 and used_at is null",
            login,
            now,
        )
        secret = secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=self.policy.ttl_s)
        reset_id = await conn.fetchval(
            "insert into panel_password_resets (login, token_hash, recipient, created_at,"
            " expires_at) values ($1, $2, $3, $4, $5) returning id",
            login,
            digest(secret),
            row["recipient"],
            now,
            expires,
        )
        mail = reset_mail(
            reset_id, login, row["recipient"], link(public_url, secret), expires, language
        )
        await enqueue(conn, mail, now)
        return True

    async def check(self, secret: str, now: datetime) -> str:
        """The login a reset secret is good for at `now`; ResetRefused otherwise."""
        row = await self.pool.fetchrow(
            "select login, used_at, expires_at from panel_password_resets where token_hash = $1",
            digest(secret),
        )
        return _good(row, now)

    async def complete(self, secret: str, password: str, now: datetime) -> Done:
        """Set the new password through a good reset secret, once."""
        check_password(password)
        await self.check(secret, now)  # before the costly hash: a bad link costs nothing
        hashed = await asyncio.to_thread(HASHER.hash, password)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "select login, used_at, expires_at from panel_password_resets"
                " where token_hash = $1 for update",
                digest(secret),
            )
            login = _good(row, now)  # again, under the lock: two uses race for one link
            account = await conn.fetchval(
                "update panel_logins set password_hash = $2, failures = 0, locked_until = null,"
                " password_set_at = $3 where login = $1 returning account",
                login,
                hashed,
                now,
            )
            await conn.execute(
                "update panel_password_resets set used_at = $2 where login = $1"
                " and used_at is null",
                login,
                now,
            )
            ended = await conn.fetchval(
                "with ended as (update panel_tokens set revoked_at = $2 where login = $1"
                " and revoked_at is null returning 1) select count(*) from ended",
                login,
                now,
            )
            # the secrets of this login's sent reset mails are dead now: drop them from the
            # outbox too
            await conn.execute(
                "update mail_outbox set body = $2 where sent_at is not null and key in"
                " (select 'password-reset/' || id from panel_password_resets where login = $1)",
                login,
                SCRUBBED,
            )
        return Done(login, account, int(ended))


def _good(row: asyncpg.Record | None, now: datetime) -> str:
    if row is None:
        raise ResetRefused("RESET_LINK_UNKNOWN", "this reset link is not known")
    if row["used_at"] is not None:
        raise ResetRefused("RESET_LINK_USED", "this reset link was used or replaced")
    if row["expires_at"] <= now:
        raise ResetRefused("RESET_LINK_EXPIRED", "this reset link has expired")
    return str(row["login"])
