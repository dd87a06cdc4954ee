"""Customer records in PostgreSQL: typed reads for every package (billing's buyer data, the
panel) and the writes, each one transaction with its event row.

An account's `unverified` flag follows its customer's verification in the same transaction;
the accounts are mirrored to Redis after the commit (as every account change is), so the
ledger refuses or allows their outbound calls from then on."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from core.pg import Conn
from customers.model import (
    CUSTOMER_FIELDS,
    EDITABLE_FIELDS,
    Customer,
    CustomerConflict,
    CustomerError,
    CustomerKind,
    CustomerNotFound,
    Verification,
)
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound

_STORED = CUSTOMER_FIELDS  # the dataclass's fields are the table's columns
_ENUMS = {"kind": CustomerKind, "verification": Verification}


def _customer(row: asyncpg.Record) -> Customer:
    data = {c: row[c] for c in _STORED}
    for name, kind in _ENUMS.items():
        data[name] = kind(data[name])
    return Customer(**data)


# -- reads -----------------------------------------------------------------------------------


async def get_customer(conn: Conn | asyncpg.Pool, customer_id: str) -> Customer:
    row = await conn.fetchrow("select * from customers where id = $1", customer_id)
    if row is None:
        raise CustomerNotFound(customer_id)
    return _customer(row)


async def customer_of_account(conn: Conn | asyncpg.Pool, account_id: str) -> Customer | None:
    """The customer that owns an account (an invoice's buyer), or None for an account that
    has no customer record."""
    row = await conn.fetchrow(
        "select c.* from customers c join accounts a on a.customer_id = c.id where a.id = $1",
        account_id,
    )
    return None if row is None else _customer(row)


async def customers_of_accounts(
    conn: Conn | asyncpg.Pool, account_ids: list[str]
) -> dict[str, Customer]:
    """`customer_of_account` for many accounts in one query (those without one left out)."""
    rows = await conn.fetch(
        "select a.id as of_account, c.* from customers c join accounts a"
        " on a.customer_id = c.id where a.id = any($1::text[])",
        account_ids,
    )
    return {r["of_account"]: _customer(r) for r in rows}


async def list_customers(
    conn: Conn | asyncpg.Pool, verification: Verification | None = None
) -> list[Customer]:
    rows = await conn.fetch(
        "select * from customers where $1::text is null or verification = $1 order by id",
        None if verification is None else verification.value,
    )
    return [_customer(r) for r in rows]


async def accounts_of(conn: Conn | asyncpg.Pool, customer_id: str) -> list[str]:
    rows = await conn.fetch(
        "select id from accounts where customer_id = $1 order by id", customer_id
    )
    return [r["id"] for r in rows]


# -- writes ----------------------------------------------------------------------------------


class CustomerStore:
    def __init__(self, pool: asyncpg.Pool, accounts: AccountStore) -> None:
        self.pool = pool
        self.accounts = accounts

    async def create(
        self, customer: Customer, *, at: datetime, actor: str, accounts: tuple[str, ...] = ()
    ) -> Customer:
        """A new record (pending verification), owning `accounts` if given."""
        customer = Customer(
            **{
                **{f: getattr(customer, f) for f in ("id", "legal_name", "email")},
                **{f: getattr(customer, f) for f in EDITABLE_FIELDS},
            },
            created_at=at,
            updated_at=at,
        ).validated()
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("select 1 from customers where id = $1", customer.id):
                raise CustomerConflict("id", f"customer {customer.id!r} already exists")
            await conn.execute(
                f"insert into customers ({', '.join(_STORED)}) values"
                f" ({', '.join(f'${i + 1}' for i in range(len(_STORED)))})",
                *_values(customer),
            )
            await _event(conn, customer.id, "created", actor, customer.as_dict(), at)
            for account in accounts:
                await _attach(conn, customer, account, actor, at)
            stored = await get_customer(conn, customer.id)
        await self._mirror(accounts)
        return stored

    async def update(
        self,
        customer_id: str,
        *,
        at: datetime,
        actor: str,
        allowed: tuple[str, ...] = EDITABLE_FIELDS,
        **changes: Any,
    ) -> Customer:
        """Change fields of the record; `allowed` narrows them (a customer's own contact
        data). An anonymised record stays anonymous."""
        for name in changes:
            if name not in allowed:
                raise CustomerError(name, "not a field that can be changed here")
        async with self.pool.acquire() as conn, conn.transaction():
            current = await _locked(conn, customer_id)
            if current.anonymised_at is not None:
                raise CustomerConflict("id", f"customer {customer_id!r} is anonymised")
            updated = current.with_changes(**changes, updated_at=at)
            diff = {
                k: _jsonable(getattr(updated, k))
                for k in changes
                if getattr(updated, k) != getattr(current, k)
            }
            if diff:
                await _write(conn, updated)
                await _event(conn, customer_id, "updated", actor, diff, at)
        return updated

    async def verify(
        self,
        customer_id: str,
        status: Verification,
        *,
        at: datetime,
        actor: str,
        note: str = "",
    ) -> Customer:
        """Record the verification's outcome (who, when); accounts follow it."""
        if not actor:
            raise CustomerError("by", "who verified must be recorded")
        async with self.pool.acquire() as conn, conn.transaction():
            current = await _locked(conn, customer_id)
            if current.anonymised_at is not None:
                raise CustomerConflict("id", f"customer {customer_id!r} is anonymised")
            pending = status is Verification.PENDING
            started = current.contract_started_at
            if status is Verification.VERIFIED and current.first_topup_at is not None:
                started = started or max(current.first_topup_at, at)
            updated = current.with_changes(
                verification=status,
                verification_by=None if pending else actor,
                verification_at=None if pending else at,
                verification_note=note,
                contract_started_at=started,
                updated_at=at,
            )
            await _write(conn, updated)
            await conn.execute(
                "update accounts set unverified = $2, updated_at = $3 where customer_id = $1",
                customer_id,
                not updated.verified,
                at,
            )
            await _event(
                conn, customer_id, f"verification_{status.value}", actor, {"note": note}, at
            )
            accounts = tuple(await accounts_of(conn, customer_id))
        await self._mirror(accounts)
        return updated

    async def attach(self, customer_id: str, account: str, *, at: datetime, actor: str) -> None:
        """Make `customer_id` the owner of `account` (its flag follows the customer's state)."""
        async with self.pool.acquire() as conn, conn.transaction():
            customer = await _locked(conn, customer_id)
            await _attach(conn, customer, account, actor, at)
        await self._mirror((account,))

    async def _mirror(self, accounts: tuple[str, ...]) -> None:
        for account in accounts:
            await self.accounts.mirror(await self.accounts.get(account))


async def _locked(conn: Conn, customer_id: str) -> Customer:
    row = await conn.fetchrow("select * from customers where id = $1 for update", customer_id)
    if row is None:
        raise CustomerNotFound(customer_id)
    return _customer(row)


async def _attach(conn: Conn, customer: Customer, account: str, actor: str, at: datetime) -> None:
    row = await conn.fetchrow("select customer_id from accounts where id = $1 for update", account)
    if row is None:
        raise AccountNotFound(account)
    if row["customer_id"] not in (None, customer.id):
        raise CustomerConflict("account", f"{account!r} belongs to customer {row['customer_id']!r}")
    await conn.execute(
        "update accounts set customer_id = $2, unverified = $3, updated_at = $4 where id = $1",
        account,
        customer.id,
        not customer.verified,
        at,
    )
    # A top-up made before the account was attached still starts the contract.
    first = await conn.fetchval(
        "select min(e.created_at) from ledger_entries e join accounts a on a.id = e.account"
        " where a.customer_id = $1 and e.kind = 'topup'",
        customer.id,
    )
    if first is not None and first != customer.first_topup_at:
        verified_at = customer.verification_at if customer.verified else None
        started = max(first, verified_at) if verified_at is not None else None
        await conn.execute(
            "update customers set first_topup_at = $2, contract_started_at = $3 where id = $1",
            customer.id,
            first,
            customer.contract_started_at or started,
        )
    await _event(conn, customer.id, "account_attached", actor, {"account": account}, at)


async def _write(conn: Conn, customer: Customer) -> None:
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(_STORED[1:]))
    await conn.execute(f"update customers set {sets} where id = $1", *_values(customer))


def _values(c: Customer) -> list[Any]:
    return [_plain(getattr(c, f)) for f in _STORED]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, (CustomerKind, Verification)) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return _plain(value)


async def _event(
    conn: Conn, customer: str, event: str, actor: str, detail: Any, at: datetime
) -> None:
    await conn.execute(
        "insert into customer_events (customer, event, actor, detail, at)"
        " values ($1, $2, $3, $4, $5)",
        customer,
        event,
        actor,
        json.dumps(detail, default=str),
        at,
    )
