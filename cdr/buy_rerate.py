"""Buy-side re-rating: what routed calls cost the operator, priced again.

Each answered call that went out through a carrier is rated with rating.tariff.rate_call
(its E.164 number, answer time and billsec) by a buy deck: the one named, else the one the
call was priced with (`buy_deck`), else its carrier's deck; the version in force at the
call's start (or the one named), as sell-side re-rating does. A deck in another currency
than the sale is converted with the exchange rate in force at the answer (rating.fx, rounded
up). Applying updates the CDRs' buy columns in place (margin reports and carrier
reconciliation read them) and keeps each changed call's previous values (buy_rerate_calls).

Idempotent by construction: the new cost is a function of the call and the decks, so a
second run finds nothing to change and writes nothing; each update is guarded by the values
read, so a concurrent run cannot apply a difference twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core.pg import Conn
from rating.deck import Deck
from rating.deck_store import DeckNotFound, effective_instants, load_deck_version
from rating.fx import FxTable
from rating.fx_store import list_fx
from rating.money import format_micro
from rating.tariff import NoRate, rate_call

_CALLS = """
select c.switch, c.account, c.call_id, c.started_at, c.answered_at, c.ended_at, c.billsec,
       c.e164, c.carrier, c.currency, c.buy_deck, c.buy_deck_version, c.buy_cost,
       coalesce(k.deck, '') as carrier_deck
from cdrs c left join carriers k on k.name = c.carrier
where c.started_at >= $1 and c.started_at < $2 and c.state = 'finished' and c.answered
  and c.carrier <> '' and c.billsec > 0 and c.e164 <> ''
  and ($3 = '' or c.carrier = $3) and ($4 = '' or c.account = $4)
order by c.started_at, c.switch, c.account, c.call_id
"""


class BuyRerateError(ValueError):
    """Bad re-rating input; names the option."""

    code = "BAD_BUY_RERATE"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


@dataclass(frozen=True, slots=True)
class BuyLine:
    switch: str
    account: str
    call_id: str
    started_at: datetime
    carrier: str
    number: str
    billsec: int
    currency: str
    old_deck: str
    old_version: int
    old_cost: int
    new_deck: str
    new_version: int
    new_cost: int

    @property
    def diff(self) -> int:
        return self.new_cost - self.old_cost

    @property
    def changed(self) -> bool:
        return (self.old_deck, self.old_version, self.old_cost) != (
            self.new_deck, self.new_version, self.new_cost,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "switch": self.switch,
            "account": self.account,
            "carrier": self.carrier,
            "started_at": self.started_at.isoformat(),
            "number": self.number,
            "billsec": self.billsec,
            "currency": self.currency,
            "old": {"deck": self.old_deck, "version": self.old_version,
                    "buy_cost": format_micro(self.old_cost)},
            "new": {"deck": self.new_deck, "version": self.new_version,
                    "buy_cost": format_micro(self.new_cost)},
            "diff": format_micro(self.diff),
        }  # fmt: skip


@dataclass(frozen=True)
class BuyRerate:
    start: datetime
    end: datetime
    carrier: str
    deck: str
    account: str
    lines: list[BuyLine]
    unrated: list[dict[str, str]] = field(default_factory=list)
    applied: int = 0  # calls this run updated (0 on a dry run or when nothing changed)

    @property
    def changed(self) -> list[BuyLine]:
        return [line for line in self.lines if line.changed]

    def as_dict(self) -> dict[str, Any]:
        totals: dict[str, int] = {}
        for line in self.lines:
            totals[line.currency] = totals.get(line.currency, 0) + line.diff
        return {
            "side": "buy",
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "carrier": self.carrier,
            "deck": self.deck,
            "account": self.account,
            "calls": len(self.lines),
            "changed": len(self.changed),
            "total_diff": {c: format_micro(v) for c, v in sorted(totals.items())},
            "applied": self.applied,
            "unrated": self.unrated,
            "lines": [line.as_dict() for line in self.changed],
        }


class _Decks:
    """Deck versions loaded once per run, and each deck's effective instants."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.instants: dict[str, dict[int, datetime]] = {}
        self.loaded: dict[tuple[str, int], Deck] = {}

    async def at(self, name: str, version: int | None, start: datetime) -> Deck | None:
        if name not in self.instants:
            self.instants[name] = await effective_instants(self.conn, name)
        instants = self.instants[name]
        if version is None:
            found = [v for v, effective in instants.items() if effective <= start]
            version = max(found) if found else None
        elif version not in instants:
            raise DeckNotFound(name, version)
        if version is None:
            return None
        if (name, version) not in self.loaded:
            self.loaded[name, version] = await load_deck_version(self.conn, name, version)
        return self.loaded[name, version]


async def buy_rerate(
    conn: Conn,
    start: datetime,
    end: datetime,
    *,
    carrier: str = "",
    deck: str = "",
    version: int | None = None,
    account: str = "",
    apply: bool = False,
    now: datetime,
    actor: str = "operator",
) -> BuyRerate:
    """Re-rate the buy side of routed calls started in [start, end) (of one carrier, one
    account, with one deck when named); with apply=True store what changed, as of `now`."""
    if version is not None and not deck:
        raise BuyRerateError("--deck", "a version needs the deck's name: NAME:VERSION")
    if carrier and not await conn.fetchval("select 1 from carriers where name = $1", carrier):
        raise BuyRerateError("--carrier", f"unknown carrier {carrier!r}")
    if deck and not await effective_instants(conn, deck):
        raise DeckNotFound(deck)
    decks = _Decks(conn)
    fx = FxTable.of(await list_fx(conn))
    lines: list[BuyLine] = []
    unrated: list[dict[str, str]] = []
    for row in await conn.fetch(_CALLS, start, end, carrier, account):
        try:
            lines.append(await _line(row, decks, fx, deck, version))
        except (NoRate, _Unrated) as exc:
            unrated.append({"call_id": row["call_id"], "switch": row["switch"],
                            "why": str(exc)})  # fmt: skip
    result = BuyRerate(start, end, carrier, deck, account, lines, unrated)
    if not apply or not result.changed:
        return result
    return await _apply(conn, result, now, actor)


class _Unrated(LookupError):
    pass


async def _line(
    row: asyncpg.Record, decks: _Decks, fx: FxTable, deck: str, version: int | None
) -> BuyLine:
    name = deck or row["buy_deck"] or row["carrier_deck"]
    if not name:
        raise _Unrated(f"carrier {row['carrier']!r} unknown and no buy deck recorded")
    found = await decks.at(name, version, row["started_at"])
    if found is None:
        raise _Unrated(f"no version of deck {name!r} in force at the call's start")
    answered = row["answered_at"] or row["ended_at"] - timedelta(seconds=row["billsec"])
    cost = rate_call(found, row["e164"].lstrip("+"), answered, row["billsec"]).cost
    converted = fx.convert(cost, found.currency, row["currency"], answered)
    if converted is None:
        raise _Unrated(f"no {found.currency}->{row['currency']} rate at {answered.isoformat()}")
    return BuyLine(
        row["switch"], row["account"], row["call_id"], row["started_at"], row["carrier"],
        row["e164"], row["billsec"], row["currency"], row["buy_deck"],
        row["buy_deck_version"], row["buy_cost"], found.name, found.version or 0, converted,
    )  # fmt: skip


_APPLY = """
with given as (
    select * from unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::int[], $8::bigint[], $9::text[], $10::int[], $11::bigint[])
        as t(switch, account, call_id, started_at, old_deck, old_version, old_cost, new_deck,
             new_version, new_cost)
), updated as (
    update cdrs c set buy_deck = g.new_deck, buy_deck_version = g.new_version,
                      buy_cost = g.new_cost
    from given g
    where c.switch = g.switch and c.account = g.account and c.call_id = g.call_id
      and c.started_at = g.started_at and c.buy_deck = g.old_deck
      and c.buy_deck_version = g.old_version and c.buy_cost = g.old_cost
    returning g.*
), kept as (
    insert into buy_rerate_calls (rerate_id, switch, account, call_id, started_at, old_deck,
        old_version, old_cost, new_deck, new_version, new_cost)
    select $1, * from updated returning 1
)
select count(*) from kept
"""


async def _apply(conn: Conn, result: BuyRerate, now: datetime, actor: str) -> BuyRerate:
    """One statement for every changed call, each update guarded by the values read (a
    concurrent run that got there first wins; this one neither changes nor records it)."""
    changed = result.changed
    async with conn.transaction():
        rerate_id = await conn.fetchval(
            "insert into buy_rerates (started_from, started_to, carrier, deck, account, calls,"
            " changed, total_diff, actor, applied_at) values ($1,$2,$3,$4,$5,$6,0,$7,$8,$9)"
            " returning id",
            result.start, result.end, result.carrier, result.deck, result.account,
            len(result.lines), sum(ln.diff for ln in changed), actor, now,
        )  # fmt: skip
        columns = [[getattr(ln, name) for ln in changed] for name in (
            "switch", "account", "call_id", "started_at", "old_deck", "old_version", "old_cost",
            "new_deck", "new_version", "new_cost")]  # fmt: skip
        applied = int(await conn.fetchval(_APPLY, rerate_id, *columns))
        await conn.execute("update buy_rerates set changed = $2 where id = $1", rerate_id,
                           applied)  # fmt: skip
    return BuyRerate(result.start, result.end, result.carrier, result.deck, result.account,
                     result.lines, result.unrated, applied)  # fmt: skip
