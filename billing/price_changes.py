"""Price changes with notice (terms §7.1: an increase must be announced at least one billing
period before it comes into force; a decrease needs no notice).

`guard(...)` is run by the deck import inside its transaction, once the new version's rates
are stored: it compares them, in PostgreSQL, with the version that would otherwise be in
force at the new one's effective instant (for every prefix of either deck, the longest
matching prefix of the other, the same band or '*', the tier in force at the same second)
and records the destinations whose connect fee, per-second rate or increment went up. With
any, the effective instant must be at or after `earliest_effective(noticed_at)` (the start
of the billing period that follows `price_notice_periods` whole periods after the notice);
an earlier one is refused (nothing is stored) unless forced, and a forced one is written to
the operators' audit log. The notices themselves are sent by the notification worker
(notify/price_changes.py) to every account on the deck, from the recorded change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from billing.period import Period
from billing.settings import BillingSettings
from core.pg import Conn
from rating.deck_store import ImportGuard


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


def earliest_effective(noticed_at: datetime, settings: BillingSettings) -> datetime:
    """Notice given in November with one period of notice: December passes whole, the
    increase may take effect on 1 January at midnight of the operator's zone."""
    period = Period.of(noticed_at, settings.timezone)
    return period.shifted(settings.price_notice_periods + 1).bounds(settings.timezone)[0]


# the longest prefix of `text` among a deck's prefixes (deck_rates is indexed by deck, prefix)
_LONGEST = (
    "(select r.prefix from deck_rates r where r.deck_id = {deck}"
    " and r.prefix = any(array(select left({text}, k)"
    " from generate_series(1, length({text})) k))"
    " order by length(r.prefix) desc limit 1)"
)

# (reported prefix, prefix priced in the new deck, prefix priced in the old one): every new
# prefix, and every old prefix the new deck no longer has (its calls fall to a shorter one)
_PAIRS = (
    "select p.prefix, p.prefix as new_prefix, "
    + _LONGEST.format(deck="$4", text="p.prefix")
    + " as old_prefix from (select distinct prefix from deck_rates where deck_id = $3) p"
    " union all "
    "select q.prefix, "
    + _LONGEST.format(deck="$3", text="q.prefix")
    + ", q.prefix from (select distinct prefix from deck_rates where deck_id = $4) q"
    " where not exists (select 1 from deck_rates n where n.deck_id = $3 and n.prefix = q.prefix)"
)

_INCREASES = (
    "insert into deck_increases (deck, version, prefix, name, band, from_s,"
    " old_connect_fee, new_connect_fee, old_per_minute, new_per_minute,"
    " old_increment_s, new_increment_s)"
    " select $1, $2, pr.prefix, n.name, n.band, n.from_s, o.connect_fee, n.connect_fee,"
    " o.rate * 60 / o.rate_unit_s, n.rate * 60 / n.rate_unit_s, o.increment_s, n.increment_s"
    " from (" + _PAIRS + ") pr"
    " join deck_rates n on n.deck_id = $3 and n.prefix = pr.new_prefix"
    " cross join lateral (select * from deck_rates o where o.deck_id = $4"
    "   and o.prefix = pr.old_prefix and (o.band = n.band or o.band = '*')"
    "   and o.from_s <= n.from_s order by (o.band = n.band) desc, o.from_s desc limit 1) o"
    " where n.connect_fee > o.connect_fee"
    " or n.rate::numeric * o.rate_unit_s > o.rate::numeric * n.rate_unit_s"
    " or n.increment_s > o.increment_s"
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
            " values ($1, $2, '', false, 'deck price increase forced', 'CLI', 'deck import',"
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
