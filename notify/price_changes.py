"""Notices of price increases (terms §7.1), read from the changes billing recorded at the
deck's import (its tables, never its code: the back-office packages stay apart). Every
account on the deck that is not closed is told once per version, in its language, with the
destinations whose price goes up (the first `LISTED`; the rest counted) and the instant the
new prices apply, in the account's time zone."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from notify import contacts
from notify.notices import enqueue
from notify.settings import NotifySettings

LISTED = 30  # destinations named in one notice

_PENDING = (
    "select c.deck, c.version, c.effective_at, c.increases, a.id as account, a.timezone,"
    " a.currency from deck_price_changes c join accounts a on a.deck = c.deck"
    " where a.status <> 'closed' and not exists (select 1 from notices n"
    " where n.account = a.id and n.kind = 'price_change'"
    " and n.dedupe_key = c.deck || ':' || c.version::text)"
    " order by c.deck, c.version, a.id limit $1"
)


def rate(micro: int, currency: str, language: str) -> str:
    """A price per minute to 4 places (deck rates are finer than the grosz)."""
    value = (Decimal(micro) / 1_000_000).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
    text = f"{value:.4f}"
    return f"{text.replace('.', ',') if language == 'pl' else text} {currency}"


def _line(row: dict[str, Any], currency: str, language: str) -> str:
    pl = language == "pl"
    what = f"+{row['prefix']} {row['name']}"
    if row["band"] != "*" or row["from_s"]:
        tier = [row["band"]] if row["band"] != "*" else []
        if row["from_s"]:
            tier.append(f"{'od' if pl else 'from'} {row['from_s']} s")
        what += f" ({', '.join(tier)})"
    parts = [
        f"{rate(row['old_per_minute'], currency, language)} → "
        f"{rate(row['new_per_minute'], currency, language)} {'za minutę' if pl else 'a minute'}"
    ]
    if row["new_connect_fee"] > row["old_connect_fee"]:
        fee = "opłata za połączenie" if pl else "connection fee"
        old = rate(row["old_connect_fee"], currency, language)
        parts.append(f"{fee} {old} → {rate(row['new_connect_fee'], currency, language)}")
    if row["new_increment_s"] > row["old_increment_s"]:
        step = "naliczanie co" if pl else "charged per"
        parts.append(f"{step} {row['old_increment_s']} s → {row['new_increment_s']} s")
    return f"- {what}: {'; '.join(parts)}"


def changes(rows: list[dict[str, Any]], total: int, currency: str, language: str) -> str:
    lines = [_line(r, currency, language) for r in rows[:LISTED]]
    if total > len(lines):
        more = total - len(lines)
        lines.append(f"- (i {more} innych)" if language == "pl" else f"- (and {more} more)")
    return "\n".join(lines)


async def _increases(conn: Any, deck: str, version: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select * from deck_increases where deck = $1 and version = $2"
        " order by prefix, band, from_s limit $3",
        deck,
        version,
        LISTED,
    )
    return [dict(r) for r in rows]


async def scan(pool: asyncpg.Pool, settings: NotifySettings, now: datetime) -> int:
    """Record the price-change notices not yet recorded; how many were created."""
    created = 0
    listed: dict[tuple[str, int], list[dict[str, Any]]] = {}
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_PENDING, settings.batch):
            key = (row["deck"], row["version"])
            if key not in listed:
                listed[key] = await _increases(conn, *key)
            zone = ZoneInfo(row["timezone"])
            data = {
                "account": row["account"],
                "deck": row["deck"],
                "version": row["version"],
                "increases": row["increases"],
                "effective": f"{row['effective_at'].astimezone(zone):%Y-%m-%d %H:%M}"
                f" {row['timezone']}",
                "effective_at": row["effective_at"].isoformat(),
                "changes_pl": changes(listed[key], row["increases"], row["currency"], "pl"),
                "changes_en": changes(listed[key], row["increases"], row["currency"], "en"),
            }
            contact = await contacts.get(conn, row["account"])
            dedupe = f"{row['deck']}:{row['version']}"
            created += len(
                await enqueue(conn, settings, contact, "price_change", data, dedupe, now)
            )
    return created
