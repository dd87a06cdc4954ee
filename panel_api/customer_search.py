"""Finding customer records the way an operator asks: part of the name, the e-mail, the
record's or an account's id, the NIP (digits, with or without dashes) or one of the
customer's numbers (E.164 or national digits)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from core.pg import Conn
from customers.model import Customer, Verification
from customers.store import get_customer, list_customers

LIMIT = 50
_DIGITS = re.compile(r"\D")
_WILD = re.compile(r"([\\%_])")


def _like(text: str) -> str:
    return "%" + _WILD.sub(r"\\\1", text) + "%"


_SEARCH = (
    "select c.id from customers c where ($5::text is null or c.verification = $5) and ("
    " c.legal_name ilike $1 or c.email ilike $1 or c.id ilike $1"
    " or exists (select 1 from accounts a where a.customer_id = c.id and a.id ilike $1)"
    " or ($2 and regexp_replace(coalesce(c.tax_id, ''), '[^0-9]', '', 'g') like $3)"
    " or ($4 and exists (select 1 from numbers n join accounts a on a.id = n.account"
    "  where a.customer_id = c.id and n.e164 like $3)))"
    " order by c.legal_name, c.id limit $6"
)


@asynccontextmanager
async def _acquired(conn: Conn | asyncpg.Pool) -> AsyncIterator[Conn]:
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            yield c
    else:
        yield conn


async def search_customers(
    conn: Conn | asyncpg.Pool, words: str | None, verification: Verification | None = None
) -> list[Customer]:
    """Records matching `words` (all records when there are none), at most LIMIT of them."""
    wanted = (words or "").replace("\x00", "").strip()  # PostgreSQL text holds no NUL
    if not wanted:
        return await list_customers(conn, verification)
    digits = _DIGITS.sub("", wanted)
    # a NIP or a number: only when what was typed is mostly digits (not "Kowalski 2")
    numeric = len(digits) >= 3 and len(digits) * 2 >= len(wanted.replace(" ", ""))
    async with _acquired(conn) as c, c.transaction(readonly=True):
        # the planner's estimate of the OR-ed scans crosses JIT's threshold, and compiling
        # costs several times the scan itself (measured: 730 ms of 880 on 20k records)
        await c.execute("set local jit = off")
        rows = await c.fetch(
            _SEARCH,
            _like(wanted),
            numeric,
            _like(digits),
            numeric,
            None if verification is None else verification.value,
            LIMIT,
        )
    # the store's own reader builds each record (a page of primary-key reads)
    return [await get_customer(conn, r["id"]) for r in rows]
