"""Balance thresholds: one notice per crossing.

A threshold is crossed when the balance goes below it; it is re-armed only when the balance
is above it again, so a balance hovering around a threshold (calls debiting, small top-ups)
sends one notice, not one per pass. A balance exactly at the threshold changes nothing."""

from __future__ import annotations

from datetime import datetime

from core.pg import Conn


def kind_for(threshold: int) -> str:
    return "balance_negative" if threshold == 0 else "low_balance"


async def observe(
    conn: Conn, account: str, threshold: int, balance: int, now: datetime
) -> int | None:
    """Record where `balance` stands against `threshold`; the crossing's number when this
    observation is a new crossing below it, else None. One statement, so two workers
    observing the same crossing see it once."""
    if balance == threshold:
        return None
    below = balance < threshold
    row = await conn.fetchrow(
        "insert into notify_thresholds (account, threshold, below, crossings, changed_at)"
        " values ($1, $2, $3::boolean, $3::boolean::int, $4)"
        " on conflict (account, threshold) do update set below = excluded.below,"
        " crossings = notify_thresholds.crossings + excluded.below::int,"
        " changed_at = excluded.changed_at"
        " where notify_thresholds.below <> excluded.below"
        " returning crossings, below",
        account,
        threshold,
        below,
        now,
    )
    if row is None or not row["below"]:
        return None
    crossings: int = row["crossings"]
    return crossings
