"""Numbers in PostgreSQL: the inventory and each number's assignment, one transaction per
change with its event row. The account's row carries its numbers and caller id (what the
ledger reads in Redis); it is mirrored after the commit, like every account change.

A number's monthly price is billed like any subscription: assigning it starts the
subscription 'number +48...' of the account (billing's fee run charges it per month, once),
releasing it ends it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from core.pg import Conn
from numbering.model import (
    Did,
    NumberConflict,
    NumberError,
    NumberNotFound,
    NumberStatus,
    NumberType,
    check_carrier,
    parse_did,
)
from numbering.settings import NumberingSettings
from rating.account_store import AccountStore
from rating.accounts import Account, AccountNotFound, AccountStatus
from rating.keys import DID_GONE as GONE

_COLUMNS = (
    "e164",
    "country",
    "type",
    "carrier",
    "monthly_cost",
    "monthly_price",
    "status",
    "account",
    "assigned_at",
    "quarantined_until",
    "created_at",
    "updated_at",
)


def _did(row: asyncpg.Record) -> Did:
    data = {c: row[c] for c in _COLUMNS}
    data["type"] = NumberType(data["type"])
    data["status"] = NumberStatus(data["status"])
    return Did(**data)


def fee_name(e164: str) -> str:
    """The subscription a number's monthly price is billed as."""
    return f"number {e164}"


# -- reads -----------------------------------------------------------------------------------


async def get_number(conn: Conn | asyncpg.Pool, e164: str) -> Did:
    row = await conn.fetchrow("select * from numbers where e164 = $1", e164)
    if row is None:
        raise NumberNotFound(e164)
    return _did(row)


async def list_numbers(
    conn: Conn | asyncpg.Pool,
    *,
    status: NumberStatus | None = None,
    account: str | None = None,
) -> list[Did]:
    rows = await conn.fetch(
        "select * from numbers where ($1::text is null or status = $1)"
        " and ($2::text is null or account = $2) order by e164",
        None if status is None else status.value,
        account,
    )
    return [_did(r) for r in rows]


# -- writes ----------------------------------------------------------------------------------


class NumberStore:
    def __init__(
        self, pool: asyncpg.Pool, accounts: AccountStore, settings: NumberingSettings
    ) -> None:
        self.pool = pool
        self.accounts = accounts
        self.settings = settings

    def canonical(self, text: str) -> str:
        return parse_did(text, self.settings.home_country)[0]

    async def add(
        self,
        text: str,
        *,
        carrier: str,
        monthly_cost: int,
        monthly_price: int,
        at: datetime,
        actor: str,
        type: NumberType | None = None,
    ) -> Did:
        e164, country, found = parse_did(text, self.settings.home_country)
        if type is not None and (type is NumberType.FOREIGN) != (found is NumberType.FOREIGN):
            raise NumberError("type", f"{e164} is {found.value}, not {type.value}")
        for name, value in (("monthly_cost", monthly_cost), ("monthly_price", monthly_price)):
            if value < 0:
                raise NumberError(name, "must not be negative")
        did = Did(
            e164, country, type or found, check_carrier(carrier), monthly_cost, monthly_price,
            created_at=at, updated_at=at,
        )  # fmt: skip
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("select 1 from numbers where e164 = $1", e164):
                raise NumberConflict("number", f"{e164} is in the inventory already")
            await conn.execute(
                f"insert into numbers ({', '.join(_COLUMNS)}) values"
                f" ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})",
                *_values(did),
            )
            await _event(conn, e164, "added", None, actor, did.as_dict(), at)
        return did

    async def assign(
        self, text: str, account: str, *, at: datetime, actor: str, caller_id: bool = False
    ) -> Did:
        """Give a free number to an account; it becomes the caller id when asked, or when the
        account has none yet. Refused after the account ported a number out (§4.6)."""
        e164 = self.canonical(text)
        async with self.pool.acquire() as conn, conn.transaction():
            did = await _locked(conn, e164)
            acct = await _account_row(conn, account)
            if did.status is not NumberStatus.FREE:
                raise NumberConflict("number", f"{e164} is {did.status.value}, not free")
            if acct["status"] == "closed":
                raise NumberConflict("account", f"account {account!r} is closed")
            if acct["ported_out_at"] is not None:
                raise NumberConflict(
                    "account",
                    f"account {account!r} ported a number out: no new numbers are assigned",
                )
            numbers = [*acct["numbers"], e164]
            default = e164 if caller_id or acct["caller_id"] is None else acct["caller_id"]
            await _set_numbers(conn, account, numbers, default, at)
            await conn.execute(
                "update numbers set status = 'assigned', account = $2, assigned_at = $3,"
                " quarantined_until = null, updated_at = $3 where e164 = $1",
                e164,
                account,
                at,
            )
            if did.monthly_price > 0:
                await conn.execute(
                    "insert into subscriptions (account, name, monthly_fee, started_on)"
                    " values ($1, $2, $3, $4) on conflict (account, name) do update set"
                    " monthly_fee = excluded.monthly_fee, started_on = excluded.started_on,"
                    " ended_on = null",
                    account,
                    fee_name(e164),
                    did.monthly_price,
                    at.astimezone(ZoneInfo(acct["timezone"])).date(),
                )
            await _event(conn, e164, "assigned", account, actor, {"caller_id": default}, at)
            assigned = await get_number(conn, e164)
        await self._mirror(account)
        return assigned

    async def release(
        self, text: str, *, at: datetime, actor: str, reason: str = "", event: str = "released"
    ) -> Did:
        """Take a number back from its account into quarantine."""
        e164 = self.canonical(text)
        quarantine = at + timedelta(days=self.settings.quarantine_days)
        account = await self._take_back(e164, "quarantined", quarantine, at, actor, reason, event)
        await self._mirror(account)
        return await get_number(self.pool, e164)

    async def release_foreign(self, account: str, *, at: datetime, reason: str) -> list[str]:
        """§5.4: every foreign number of the account goes back (into quarantine)."""
        rows = await self.pool.fetch(
            "select e164 from numbers where account = $1 and status = 'assigned'"
            " and type = 'foreign' order by e164",
            account,
        )
        for r in rows:
            await self.release(
                r["e164"], at=at, actor="billing", reason=reason, event="released_foreign"
            )
        return [r["e164"] for r in rows]

    async def port_out(self, text: str, *, at: datetime, actor: str) -> Did:
        """The number leaves for another operator (§4.5: only after at least one top-up and
        with a positive balance; §4.6: the account gets no new numbers afterwards)."""
        e164 = self.canonical(text)
        did = await get_number(self.pool, e164)
        if did.status is not NumberStatus.ASSIGNED or did.account is None:
            raise NumberConflict("number", f"{e164} is {did.status.value}: nothing to port out")
        topups = await self.pool.fetchval(
            "select count(*) from ledger_entries where account = $1 and kind = 'topup'",
            did.account,
        )
        if not topups:
            raise NumberConflict("account", f"{did.account!r} never topped up: porting refused")
        balance = (await self.accounts.live(did.account)).balance
        if balance <= 0:
            raise NumberConflict("account", f"{did.account!r} balance is not positive: refused")
        account = await self._take_back(e164, "ported_out", None, at, actor, "", "ported_out")
        async with self.pool.acquire() as conn:
            await conn.execute(
                "update accounts set ported_out_at = coalesce(ported_out_at, $2) where id = $1",
                account,
                at,
            )
        await self._mirror(account)
        return await get_number(self.pool, e164)

    async def set_caller_id(self, account: str, text: str | None, *, at: datetime) -> None:
        """The number an account's calls present by default (one of its own, or none)."""
        e164 = self.canonical(text) if text else None
        async with self.pool.acquire() as conn, conn.transaction():
            acct = await _account_row(conn, account)
            if e164 is not None and e164 not in acct["numbers"]:
                raise NumberError("caller_id", f"{e164} is not a number of {account!r}")
            await _set_numbers(conn, account, list(acct["numbers"]), e164, at)
        await self._mirror(account)

    async def sweep(self, now: datetime) -> list[str]:
        """Quarantined numbers whose rest is over go back to the pool."""
        rows = await self.pool.fetch(
            "update numbers set status = 'free', quarantined_until = null, updated_at = $1"
            " where status = 'quarantined' and quarantined_until <= $1 returning e164",
            now,
        )
        async with self.pool.acquire() as conn:
            for r in rows:
                await _event(conn, r["e164"], "returned_to_pool", None, "sweep", {}, now)
        ledger = self.accounts.ledger
        for r in rows:  # back in the pool: no route, unknown number (404)
            await ledger.redis.delete(ledger.keys.did(r["e164"]))
        return sorted(r["e164"] for r in rows)

    async def close_account(
        self, account: str, reason: str, *, at: datetime, actor: str
    ) -> tuple[Account, list[str]]:
        """Close the account and release its numbers into quarantine, in one transaction
        (the account's `closed` event, each number's `released_closed` event); a closed
        account keeps no number. Returns the account and the numbers released."""
        released: list[str] = []
        until = at + timedelta(days=self.settings.quarantine_days)

        async def release_all(conn: Conn, closing: Account) -> None:
            rows = await conn.fetch(
                "select e164 from numbers where account = $1 and status = 'assigned' order by e164",
                closing.id,
            )
            why = f"account closed: {reason}" if reason else "account closed"
            for r in rows:
                await _take_back_in(
                    conn, r["e164"], "quarantined", until, at, actor, why, "released_closed"
                )
                released.append(r["e164"])
            if released:
                await conn.execute(
                    "insert into account_events (account, event, detail, at)"
                    " values ($1, 'numbers_released', $2, $3)",
                    closing.id,
                    json.dumps({"numbers": released, "reason": why}),
                    at,
                )

        closed = await self.accounts.set_status(
            account, AccountStatus.CLOSED, reason, at=at, within=release_all
        )
        await self.publish(account)
        return closed, released

    async def _take_back(
        self,
        e164: str,
        status: str,
        until: datetime | None,
        at: datetime,
        actor: str,
        reason: str,
        event: str,
    ) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            return await _take_back_in(conn, e164, status, until, at, actor, reason, event)

    async def _mirror(self, account: str) -> None:
        """The account's numbers and caller id, and the routes of its numbers, in Redis."""
        found = await self.accounts.get(account)
        await self.accounts.mirror(found)
        await self.publish(account)

    async def publish(self, account: str | None = None) -> int:
        """Route inbound calls: each assigned number -> its account in Redis, and numbers no
        longer assigned (released, ported out) removed. Repeat-safe; returns the routes set."""
        rows = await self.pool.fetch(
            "select e164, status, account from numbers where $1::text is null or account = $1"
            " or e164 in (select number from number_events where account = $1)",
            account,
        )
        ledger = self.accounts.ledger
        routed = 0
        for r in rows:
            key = ledger.keys.did(r["e164"])
            if r["status"] == NumberStatus.ASSIGNED.value:
                await ledger.redis.set(key, r["account"])
                routed += 1
            elif r["status"] == NumberStatus.QUARANTINED.value:
                await ledger.redis.set(key, GONE)  # its calls answer 410 Gone while it rests
            else:
                await ledger.redis.delete(key)
        return routed


async def _take_back_in(
    conn: Conn,
    e164: str,
    status: str,
    until: datetime | None,
    at: datetime,
    actor: str,
    reason: str,
    event: str,
) -> str:
    """Take an assigned number from its account (in the caller's transaction); its account."""
    did = await _locked(conn, e164)
    if did.status is not NumberStatus.ASSIGNED or did.account is None:
        raise NumberConflict("number", f"{e164} is {did.status.value}, not assigned")
    acct = await _account_row(conn, did.account)
    numbers = [n for n in acct["numbers"] if n != e164]
    default = acct["caller_id"] if acct["caller_id"] != e164 else None
    await _set_numbers(conn, did.account, numbers, default or _first(numbers), at)
    await conn.execute(
        "update numbers set status = $2, account = null, assigned_at = null,"
        " quarantined_until = $3, updated_at = $4 where e164 = $1",
        e164,
        status,
        until,
        at,
    )
    await conn.execute(
        "update subscriptions set ended_on = greatest(started_on, $3)"
        " where account = $1 and name = $2 and ended_on is null",
        did.account,
        fee_name(e164),
        at.astimezone(ZoneInfo(acct["timezone"])).date(),
    )
    await _event(conn, e164, event, did.account, actor, {"reason": reason}, at)
    return did.account


def _first(numbers: list[str]) -> str | None:
    return numbers[0] if numbers else None


async def _locked(conn: Conn, e164: str) -> Did:
    row = await conn.fetchrow("select * from numbers where e164 = $1 for update", e164)
    if row is None:
        raise NumberNotFound(e164)
    return _did(row)


async def _account_row(conn: Conn, account: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        "select status, numbers, caller_id, ported_out_at, timezone from accounts"
        " where id = $1 for update",
        account,
    )
    if row is None:
        raise AccountNotFound(account)
    return row


async def _set_numbers(
    conn: Conn, account: str, numbers: list[str], caller_id: str | None, at: datetime
) -> None:
    await conn.execute(
        "update accounts set numbers = $2, caller_id = $3, updated_at = $4 where id = $1",
        account,
        sorted(numbers),
        caller_id,
        at,
    )


def _values(d: Did) -> list[Any]:
    return [
        d.e164, d.country, d.type.value, d.carrier, d.monthly_cost, d.monthly_price,
        d.status.value, d.account, d.assigned_at, d.quarantined_until, d.created_at,
        d.updated_at,
    ]  # fmt: skip


async def _event(
    conn: Conn,
    number: str,
    event: str,
    account: str | None,
    actor: str,
    detail: Any,
    at: datetime,
) -> None:
    await conn.execute(
        "insert into number_events (number, event, account, actor, detail, at)"
        " values ($1, $2, $3, $4, $5, $6)",
        number,
        event,
        account,
        actor,
        json.dumps(detail, default=str),
        at,
    )
