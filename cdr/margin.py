"""Margin of routed calls over a period: what the sale brought (cost) against what the
carrier charged (buy_cost), per carrier, per destination and per account, in each currency.
One set-based query per grouping over the CDRs of the period (answered calls that went out
through a carrier: calls over the single trunk have no buy side)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.pg import Conn
from rating.money import format_micro

GROUPS = {
    "carriers": ("carrier",),
    "destinations": ("prefix", "rate_name"),
    "accounts": ("account",),
}


async def margin_report(conn: Conn, start: datetime, end: datetime) -> dict[str, Any]:
    """{"from", "to", "carriers": [...], "destinations": [...], "accounts": [...]}: each
    item its keys, currency, calls, billsec, sell, buy and margin (decimals and micro)."""
    out: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
    for name, keys in GROUPS.items():
        cols = ", ".join(keys)
        rows = await conn.fetch(
            f"select {cols}, currency, count(*) as calls, sum(billsec) as billsec,"
            " sum(cost) as sell, sum(buy_cost) as buy from cdrs"
            " where started_at >= $1 and started_at < $2 and state = 'finished'"
            " and answered and carrier <> ''"
            f" group by {cols}, currency order by sum(cost) - sum(buy_cost), {cols}",
            start,
            end,
        )
        out[name] = [_item(r, keys) for r in rows]
    return out


def _item(row: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    sell, buy = int(row["sell"]), int(row["buy"])
    return {
        **{k: row[k] for k in keys},
        "currency": row["currency"],
        "calls": row["calls"],
        "billsec": int(row["billsec"]),
        "sell": format_micro(sell),
        "buy": format_micro(buy),
        "margin": format_micro(sell - buy),
        "margin_micro": sell - buy,
    }
