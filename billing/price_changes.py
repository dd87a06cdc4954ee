"""Price changes with notice (terms §7.1: an increase must be announced at least one billing
period before it comes into force; a decrease needs no notice).

`guard(...)` is run by the deck import inside its transaction, once the new version's rates
are stored and checked, before it becomes the head: it compares them, in PostgreSQL (over
`deck_prefixes`, set-based: memory does not grow with the deck), with the version that
would otherwise be in force at the new one's effective instant (for every prefix of either
deck, the longest matching prefix of the other, the same band or '*', the tier in force at
the same second) and records the destinations whose connect fee, per-second rate or
increment went up. With any, the effective instant must be at or after
`earliest_effective(noticed_at)` (the start of the billing period that follows
`price_notice_periods` whole periods after the notice); an earlier one is refused (nothing
is stored) unless forced, and a forced one is written to the operators' audit log. The
notices themselves are sent by the notification worker (notify/price_changes.py) to every
account on the deck, from the recorded change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.period import Period
from billing.settings import BillingSettings
from core.pg import Conn
from rating.deck_import import ImportGuard


class PriceNoticeTooShort(ValueError):
    """An increase whose effective instant comes before the notice period allows."""

    code = "PRICE_NOTICE_TOO_SHORT"

    def __init__(
        self, deck: str, effective_at: datetime, earliest_at: datetime, increases: int
    ) -> None:
        super().__init__(
            f"effective_at: deck {deck} raises the price of {increases} destination(s);"
            f" with the notice given now it may take effect from {earliest_at.isoformat()},"
            f" not {effective_at.isoformat()} (terms §7.1; --force to override, audited)"
        )
        self.field = "effective_at"
        self.deck = deck
        self.effective_at = effective_at
        self.earliest_at = earliest_at
        self.increases = increases


@dataclass(frozen=True, slots=True)
class Force:
    """An operator's decision to apply an increase before the notice period allows."""

    by: str
    reason: str
    # where it was decided, for the audit log: the CLI, or the panel's request and token
    method: str = "CLI"
    path: str = "deck import"
    token_id: str = ""


def earliest_effective(noticed_at: datetime, settings: BillingSettings) -> datetime:
    """Notice given in November with one period of notice: December passes whole, the
    increase may take effect on 1 January at midnight of the operator's zone."""
    period = Period.of(noticed_at, settings.timezone)
    return period.shifted(settings.price_notice_periods + 1).bounds(settings.timezone)[0]


# deck_prefixes holds one row per prefix, its rates one JSON text
# [[line, name, connect_fee, rate, rate_unit_s, increment_s, from_s, band], ...]. Every step
# is a join of sets (sorted or hashed, spilled to disk if need be): no lookup per prefix,
# and nothing held in Python. $3 is the new version's decks.id, $4 the one it replaces.
_PAIRS = r"""
with n as materialized (select prefix, rows from deck_prefixes where deck_id = $3),
o as materialized (select prefix, rows from deck_prefixes where deck_id = $4),
-- a prefix one deck has and the other not: the other's shorter prefixes that would price
-- its calls, the longest first
new_only as (select n.prefix, n.rows, left(n.prefix, k) as shorter, k from n
    cross join lateral generate_series(1, length(n.prefix) - 1) k
    where not exists (select 1 from o where o.prefix = n.prefix)),
old_only as (select o.prefix, o.rows, left(o.prefix, k) as shorter, k from o
    cross join lateral generate_series(1, length(o.prefix) - 1) k
    where not exists (select 1 from n where n.prefix = o.prefix)),
new_falls as (select distinct on (c.prefix) c.prefix, c.rows as new_rows, o.rows as old_rows
    from new_only c join o on o.prefix = c.shorter order by c.prefix, c.k desc),
old_falls as (select distinct on (c.prefix) c.prefix, n.rows as new_rows, c.rows as old_rows
    from old_only c join n on n.prefix = c.shorter order by c.prefix, c.k desc)
-- (reported prefix, its rates in the new deck, in the old one): every prefix of both,
-- every new prefix whose calls used to fall to a shorter one, every old prefix whose calls
-- now fall to a shorter one (a new destination that had no price is not an increase)
select n.prefix, n.rows as new_rows, o.rows as old_rows from n join o using (prefix)
-- the same rates but for their line numbers (the leading number of each row: a price is
-- never after a '[') cannot go up: most prefixes of a new version stop here, unparsed
where regexp_replace(n.rows, '\[\d+,', '[', 'g') <> regexp_replace(o.rows, '\[\d+,', '[', 'g')
union all select prefix, new_rows, old_rows from new_falls
union all select prefix, new_rows, old_rows from old_falls
"""

_INCREASES = (
    "insert into deck_increases (deck, version, prefix, name, band, from_s,"
    " old_connect_fee, new_connect_fee, old_per_minute, new_per_minute,"
    " old_increment_s, new_increment_s)"
    " select $1, $2, pr.prefix, n.r->>1, n.r->>7, (n.r->>6)::int,"
    " (o.r->>2)::bigint, (n.r->>2)::bigint,"
    " (o.r->>3)::bigint * 60 / (o.r->>4)::bigint, (n.r->>3)::bigint * 60 / (n.r->>4)::bigint,"
    " (o.r->>5)::int, (n.r->>5)::int"
    " from (" + _PAIRS + ") pr"
    " cross join lateral json_array_elements(pr.new_rows::json) n(r)"
    # the old tier that priced the same calls: the same band (else '*'), in force from the
    # same second of the call
    " cross join lateral (select e.r from json_array_elements(pr.old_rows::json) e(r)"
    "   where (e.r->>7 = n.r->>7 or e.r->>7 = '*') and (e.r->>6)::int <= (n.r->>6)::int"
    "   order by (e.r->>7 = n.r->>7) desc, (e.r->>6)::int desc limit 1) o"
    " where (n.r->>2)::bigint > (o.r->>2)::bigint"
    " or (n.r->>3)::numeric * (o.r->>4)::int > (o.r->>3)::numeric * (n.r->>4)::int"
    " or (n.r->>5)::int > (o.r->>5)::int"
    " on conflict do nothing"
)


async def record_increases(
    conn: Conn,
    deck: str,
    version: int,
    effective_at: datetime,
    noticed_at: datetime,
    earliest_at: datetime,
) -> tuple[int, int | None]:
    """Store the version's increases over the version it replaces at its instant; (how
    many, that version). Nothing is kept when there are none."""
    previous = await conn.fetchval(
        "select max(version) from decks where name = $1 and version < $2 and effective_at <= $3",
        deck,
        version,
        effective_at,
    )
    if previous is None:
        return 0, None  # the deck's first version in force: nothing to compare with
    ids = await conn.fetch(
        "select version, id from decks where name = $1 and version = any($2::int[])",
        deck,
        [version, previous],
    )
    by_version = {r["version"]: r["id"] for r in ids}
    await conn.execute(
        "insert into deck_price_changes"
        " (deck, version, previous, effective_at, noticed_at, earliest_at, increases)"
        " values ($1, $2, $3, $4, $5, $6, 0)",
        deck,
        version,
        previous,
        effective_at,
        noticed_at,
        earliest_at,
    )
    # the planner cannot estimate rows inside the JSON texts: compiling the statement (JIT)
    # took longer than running it (0.5 s of 3 s on 200k rows)
    await conn.execute("set local jit = off")
    await conn.execute(_INCREASES, deck, version, by_version[version], by_version[previous])
    count = await conn.fetchval(
        "select count(*) from deck_increases where deck = $1 and version = $2", deck, version
    )
    if not count:
        await conn.execute(
            "delete from deck_price_changes where deck = $1 and version = $2", deck, version
        )
        return 0, int(previous)
    await conn.execute(
        "update deck_price_changes set increases = $3 where deck = $1 and version = $2",
        deck,
        version,
        count,
    )
    return int(count), int(previous)


def guard(settings: BillingSettings, now: datetime, force: Force | None = None) -> ImportGuard:
    """The deck import's check of a new version, the notice being given at `now`."""

    async def check(conn: Conn, deck: str, version: int, effective_at: datetime) -> None:
        earliest = earliest_effective(now, settings)
        count, _ = await record_increases(conn, deck, version, effective_at, now, earliest)
        if not count or effective_at >= earliest:
            return
        if force is None:
            raise PriceNoticeTooShort(deck, effective_at, earliest, count)
        await conn.execute(
            "update deck_price_changes set forced = true, forced_by = $3, reason = $4"
            " where deck = $1 and version = $2",
            deck,
            version,
            force.by,
            force.reason,
        )
        await conn.execute(
            "insert into operator_audit (at, actor, token_id, read_only, action, method,"
            " path, status, subject, detail)"
            " values ($1, $2, $5, false, 'deck price increase forced', $6, $7,"
            " 0, $3, $4::jsonb)",
            now,
            force.by,
            f"deck {deck} v{version}",
            json.dumps(
                {
                    "effective_at": effective_at.isoformat(),
                    "earliest_at": earliest.isoformat(),
                    "increases": count,
                    "reason": force.reason,
                }
            ),
            force.token_id,
            force.method,
            force.path,
        )

    return check


async def increases(conn: Conn, deck: str, version: int) -> list[dict[str, object]]:
    """The recorded increases of a version (what its notice lists)."""
    rows = await conn.fetch(
        "select prefix, name, band, from_s, old_connect_fee, new_connect_fee, old_per_minute,"
        " new_per_minute, old_increment_s, new_increment_s from deck_increases"
        " where deck = $1 and version = $2 order by prefix, band, from_s",
        deck,
        version,
    )
    return [dict(r) for r in rows]


async def outcome(conn: Conn, deck: str, version: int) -> dict[str, Any]:
    """What an import's answer says of a version's timing: its effective instant and, for
    an increase, how many destinations go up, the earliest instant allowed, whether forced."""
    row = await conn.fetchrow(
        "select d.effective_at, c.increases, c.earliest_at, c.forced from decks d"
        " left join deck_price_changes c on c.deck = d.name and c.version = d.version"
        " where d.name = $1 and d.version = $2",
        deck,
        version,
    )
    assert row is not None  # the version was stored by the import that asks
    return {
        "effective_at": row["effective_at"].isoformat(),
        "increases": row["increases"] or 0,
        "earliest_at": row["earliest_at"].isoformat() if row["earliest_at"] else None,
        "forced": bool(row["forced"]),
    }
