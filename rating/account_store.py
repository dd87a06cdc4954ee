"""Accounts in PostgreSQL (source of truth for settings and money entries), mirrored in Redis.

Money outside calls moves only as ledger entries: a row in PostgreSQL with a per-account
sequence number, then applied to the Redis balance exactly once, in order. If Redis is
unreachable after the row is committed, `sync` applies it later; nothing is lost."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core.pg import Conn
from rating.accounts import (
    ACCOUNT_FIELDS,
    Account,
    AccountError,
    AccountKind,
    AccountNotFound,
    AccountStatus,
)
from rating.ledger import Ledger

ENTRY_KINDS = ("topup", "payment", "adjustment", "fee")
# Work that commits or fails with a change of an account (e.g. a closed account's numbers
# released): run in the change's transaction, after the row is written; the account is read
# again afterwards, since it may have changed the row too.
Within = Callable[[Conn, Account], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    account: str
    seq: int
    kind: str
    amount: int
    reference: str | None
    note: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "seq": self.seq,
            "kind": self.kind,
            "amount": self.amount,
            "reference": self.reference,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }


class ReferenceConflict(ValueError):
    """A reference already names an entry of another kind or amount: not a harmless repeat."""

    def __init__(self, existing: LedgerEntry, kind: str, amount: int) -> None:
        super().__init__(
            f"reference {existing.reference!r} already recorded as {existing.kind}"
            f" {existing.amount} micro-units (entry {existing.seq}), not {kind} {amount}"
        )
        self.existing = existing
        self.kind = kind
        self.amount = amount


@dataclass(frozen=True, slots=True)
class LiveBalance:
    balance: int
    reserved: int
    credit_limit: int
    spent: int
    entries_total: int
    open_calls: int

    @property
    def available(self) -> int:
        return self.balance + self.credit_limit - self.reserved

    def as_dict(self) -> dict[str, int]:
        return {
            "balance": self.balance,
            "reserved": self.reserved,
            "credit_limit": self.credit_limit,
            "available": self.available,
            "spent": self.spent,
            "entries_total": self.entries_total,
            "open_calls": self.open_calls,
        }


_COLUMNS = ACCOUNT_FIELDS


def account_from_row(row: asyncpg.Record | None) -> Account:
    assert row is not None
    data = {c: row[c] for c in _COLUMNS}
    data["kind"] = AccountKind(data["kind"])
    data["status"] = AccountStatus(data["status"])
    data["blocked_prefixes"] = tuple(data["blocked_prefixes"])
    data["numbers"] = tuple(data["numbers"])
    data["sip_logins"] = tuple(data["sip_logins"])
    return Account(**data)


class AccountStore:
    def __init__(self, pool: asyncpg.Pool, ledger: Ledger) -> None:
        self.pool = pool
        self.ledger = ledger

    async def create(self, account: Account, *, at: datetime | None = None) -> Account:
        at = at or datetime.now(UTC)
        account = account.validated()
        async with self.pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval("select 1 from accounts where id = $1", account.id)
            if exists:
                raise AccountError("id", f"account {account.id!r} already exists")
            await _check_deck(conn, account)
            await conn.execute(
                f"insert into accounts ({', '.join(_COLUMNS)}, created_at, updated_at) values"
                f" ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS) + 1))},"
                f" ${len(_COLUMNS) + 1})",
                *self._values(account),
                at,
            )
            await self._event(conn, account.id, "created", account.as_dict(), at)
        await self.mirror(account)
        return account

    async def get(self, account_id: str) -> Account:
        row = await self.pool.fetchrow("select * from accounts where id = $1", account_id)
        if row is None:
            raise AccountNotFound(account_id)
        return account_from_row(row)

    async def page(
        self, after: str, limit: int, shard: tuple[int, int] | None = None
    ) -> list[tuple[Account, int]]:
        """Up to `limit` accounts with ids after `after`, in id order, with their last ledger
        entry's number; `shard` (index, count): only the accounts whose id hashes to it."""
        rows = await self.pool.fetch(
            "select * from accounts where id > $1"
            " and ($3::int is null or (hashtext(id) & 2147483647) % $3 = $4)"
            " order by id limit $2",
            after,
            limit,
            None if shard is None else shard[1],
            None if shard is None else shard[0],
        )
        return [(account_from_row(r), int(r["ledger_seq"])) for r in rows]

    async def all(self) -> list[Account]:
        return [
            account_from_row(r) for r in await self.pool.fetch("select * from accounts order by id")
        ]

    async def update(
        self,
        account_id: str,
        event: str = "updated",
        *,
        at: datetime | None = None,
        within: Within | None = None,
        **changes: Any,
    ) -> Account:
        """Change an account's settings. `at` is when (billing passes its own instant; an
        operator's edit is now); `within` runs in the same transaction."""
        at = at or datetime.now(UTC)
        unknown = set(changes) - set(_COLUMNS[1:])
        if unknown:
            raise AccountError(sorted(unknown)[0], "not a field that can be changed")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from accounts where id = $1 for update", account_id)
            if row is None:
                raise AccountNotFound(account_id)
            current = account_from_row(row)
            if current.status is AccountStatus.CLOSED and event != "closed":
                raise AccountError("status", "account is closed")
            updated = current.with_changes(**changes)
            if "deck" in changes or "currency" in changes:
                await _check_deck(conn, updated)
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(_COLUMNS[1:]))
            await conn.execute(
                f"update accounts set {sets}, updated_at = ${len(_COLUMNS) + 1} where id = $1",
                *self._values(updated),
                at,
            )
            await self._event(
                conn, account_id, event, {k: _jsonable(v) for k, v in changes.items()}, at
            )
            if within is not None:
                await within(conn, updated)
                updated = account_from_row(
                    await conn.fetchrow("select * from accounts where id = $1", account_id)
                )
        await self.mirror(updated)
        return updated

    async def set_status(
        self,
        account_id: str,
        status: AccountStatus,
        reason: str = "",
        *,
        at: datetime | None = None,
        within: Within | None = None,
    ) -> Account:
        at = at or datetime.now(UTC)
        event = {"active": "resumed", "suspended": "suspended", "closed": "closed"}[status.value]
        account = await self.update(account_id, event=event, at=at, within=within, status=status)
        if reason:
            async with self.pool.acquire() as conn:
                await self._event(conn, account_id, f"{event}_reason", {"reason": reason}, at)
        return account

    async def add_entry(
        self,
        account_id: str,
        kind: str,
        amount: int,
        reference: str | None = None,
        note: str = "",
        *,
        at: datetime,
    ) -> tuple[LedgerEntry, bool]:
        """Record money moving at instant `at` (PostgreSQL first), then apply it to Redis.

        `at` is the entry's time in every billing decision (fee periods, negative-balance
        stretches, invoices): the caller says when, the database clock never does.
        A repeated `reference` returns the original entry (False): payments are not doubled.
        The same reference with another amount or kind is not a repeat: ReferenceConflict."""
        if kind not in ENTRY_KINDS:
            raise AccountError("kind", f"one of {', '.join(ENTRY_KINDS)}")
        if kind in ("topup", "payment") and amount <= 0:
            raise AccountError("amount", "must be positive")
        if kind == "fee" and amount >= 0:
            raise AccountError("amount", "a fee is a negative amount")
        if amount == 0:
            raise AccountError("amount", "must not be zero")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "select status, ledger_seq from accounts where id = $1 for update", account_id
            )
            if row is None:
                raise AccountNotFound(account_id)
            if reference:
                dup = await conn.fetchrow(
                    "select * from ledger_entries where account = $1 and reference = $2",
                    account_id,
                    reference,
                )
                if dup is not None:
                    if dup["kind"] != kind or dup["amount"] != amount:
                        raise ReferenceConflict(LedgerEntry(**dict(dup)), kind, amount)
                    return LedgerEntry(**dict(dup)), False
            if row["status"] == "closed" and kind in ("topup", "payment"):
                raise AccountError("status", "account is closed")
            seq = row["ledger_seq"] + 1
            created = await conn.fetchrow(  # returning * always yields the row
                "insert into ledger_entries (account, seq, kind, amount, reference, note,"
                " created_at) values ($1,$2,$3,$4,$5,$6,$7) returning *",
                account_id,
                seq,
                kind,
                amount,
                reference,
                note,
                at,
            )
            await conn.execute("update accounts set ledger_seq = $2 where id = $1", account_id, seq)
        assert created is not None
        await self.sync(account_id)
        return LedgerEntry(**dict(created)), True

    async def entries(self, account_id: str, limit: int = 50) -> list[LedgerEntry]:
        rows = await self.pool.fetch(
            "select * from ledger_entries where account = $1 order by seq desc limit $2",
            account_id,
            limit,
        )
        return [LedgerEntry(**dict(r)) for r in rows]

    async def mirror(self, account: Account) -> None:
        fields = [x for kv in account.redis_fields().items() for x in kv]
        await self.ledger.script("mirror")(keys=[self.ledger.keys.account(account.id)], args=fields)
        self.ledger.forget(account.id)

    async def sync(self, account_id: str) -> int:
        """Mirror settings and apply every entry Redis has not seen yet. Returns how many."""
        account = await self.get(account_id)
        await self.mirror(account)
        key = self.ledger.keys.account(account_id)
        last = int(await self.ledger.redis.hget(key, "ledger_seq") or 0)
        rows = await self.pool.fetch(
            "select seq, amount, kind from ledger_entries where account = $1 and seq > $2"
            " order by seq",
            account_id,
            last,
        )
        applied = 0
        for r in rows:
            res = await self.ledger.money("apply_entry", [key], [r["seq"], r["amount"], r["kind"]])
            status = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
            if status == "GAP":
                raise RuntimeError(f"ledger of {account_id} out of sequence at {r['seq']}")
            applied += status == "APPLIED"
        return applied

    async def sync_all(self) -> int:
        ids = [r["id"] for r in await self.pool.fetch("select id from accounts")]
        return sum([await self.sync(i) for i in ids])

    async def live(self, account_id: str) -> LiveBalance:
        key = self.ledger.keys.account(account_id)
        values = await self.ledger.redis.hmget(
            key, ["balance", "reserved", "credit_limit", "spent", "entries_total"]
        )
        if values[0] is None:
            raise AccountNotFound(account_id)
        open_calls = await self.ledger.redis.hlen(self.ledger.keys.open_calls(account_id))
        b, r, c, s, e = (int(v or 0) for v in values)
        return LiveBalance(b, r, c, s, e, open_calls)

    @staticmethod
    def _values(a: Account) -> list[Any]:
        return [
            a.id,
            a.kind.value,
            a.status.value,
            a.currency,
            a.country,
            a.timezone,
            a.deck,
            a.credit_limit,
            a.max_calls,
            a.cps,
            a.daily_cap,
            a.allow_premium,
            a.allow_high_risk,
            list(a.blocked_prefixes),
            a.invoice_overdue,
            a.customer_id,
            a.unverified,
            list(a.numbers),
            a.caller_id,
            list(a.sip_logins),
            a.inbound_max_calls,
            a.inbound_cps,
        ]

    @staticmethod
    async def _event(conn: Conn, account: str, event: str, detail: Any, at: datetime) -> None:
        await conn.execute(
            "insert into account_events (account, event, detail, at) values ($1, $2, $3, $4)",
            account,
            event,
            json.dumps(detail, default=str),
            at,
        )


async def _check_deck(conn: Conn, account: Account) -> None:
    """An account's deck must exist and price in the account's currency: otherwise every
    call is NO_RATE, or charged in the wrong money."""
    if account.deck is None:
        return
    currency = await conn.fetchval(
        "select d.currency from deck_heads h join decks d"
        " on d.name = h.name and d.version = h.current_version where h.name = $1",
        account.deck,
    )
    if currency is None:
        raise AccountError("deck", f"unknown deck {account.deck!r}")
    if currency != account.currency:
        raise AccountError(
            "currency",
            f"{account.currency} differs from the currency of deck {account.deck!r} ({currency})",
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value.value if hasattr(value, "value") else value
