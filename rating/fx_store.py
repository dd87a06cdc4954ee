"""Exchange rates in PostgreSQL (the truth, one event row per change). Their copy in Redis
is written with the carriers' (rating.carrier_store.CarrierStore.mirror), so the
authorization converts buy prices without asking PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from core.pg import Conn
from rating.fx import FxError, FxRate


def _rate(row: asyncpg.Record) -> FxRate:
    return FxRate(row["base"], row["quote"], row["rate"], row["effective_at"])


async def list_fx(conn: Conn | asyncpg.Pool, base: str = "", quote: str = "") -> list[FxRate]:
    """Every rate (or one pair's, either direction named), by pair then instant."""
    rows = await conn.fetch(
        "select base, quote, rate, effective_at from fx_rates"
        " where ($1 = '' or base = $1) and ($2 = '' or quote = $2)"
        " order by base, quote, effective_at",
        base,
        quote,
    )
    return [_rate(r) for r in rows]


async def set_fx(
    conn: Conn, rate: FxRate, *, at: datetime, actor: str, source: str = ""
) -> tuple[FxRate, str | None]:
    """Store `rate` (replacing the pair's rate at the same instant); returns it checked and
    the rate it replaced (None: new). Run in the caller's transaction."""
    rate = rate.checked()
    if not actor:
        raise FxError("by", "who sets the rate is recorded: give a name")
    previous = await conn.fetchval(
        "select rate from fx_rates where base = $1 and quote = $2 and effective_at = $3"
        " for update",
        rate.base,
        rate.quote,
        rate.effective_at,
    )
    if previous == rate.rate:
        return rate, previous  # the same again: nothing to record
    await conn.execute(
        "insert into fx_rates (base, quote, effective_at, rate, source, set_by, set_at)"
        " values ($1, $2, $3, $4, $5, $6, $7) on conflict (base, quote, effective_at)"
        " do update set rate = excluded.rate, source = excluded.source,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        rate.base, rate.quote, rate.effective_at, rate.rate, source, actor, at,
    )  # fmt: skip
    await conn.execute(
        "insert into fx_rate_events (base, quote, effective_at, rate, previous, source, actor,"
        " at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        rate.base, rate.quote, rate.effective_at, rate.rate, previous, source, actor, at,
    )  # fmt: skip
    return rate, previous
