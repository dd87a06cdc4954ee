"""Ledger entries for many accounts at once (a bill run's fees and roundings).

What `AccountStore.add_entry` does for one entry, for a batch in one
statement (BOOK): the accounts' rows locked in id order (as add_entry locks one), entries
whose reference is already booked left out (a repeat books nothing), sequence numbers taken
on from each account's last, the INSERT and the UPDATE; then the entries are applied in Redis
by one script call per batch (per hash slot on a cluster; apply_entries: each entry exactly
once and in sequence). An account whose entries Redis refuses is reported, not raised:
PostgreSQL holds them and the next run's repair applies them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from core.pg import Conn
from core.redis_cluster import PipelinedScript, is_cluster
from rating.account_store import AccountStore, LedgerEntry

REDIS_BATCH = 2000  # entries per pipeline
# entries per script call: Redis runs nothing else while a script runs (the switch's
# authorizations wait), so a call stays at a few milliseconds
SCRIPT_ENTRIES = 200


# One statement (one round trip, atomic): the drafts' accounts locked in id order, drafts
# whose reference is booked (or repeated) left out, sequence numbers taken on from each
# account's last in the drafts' order, the entries inserted and the accounts' last number
# moved. An entry booked meanwhile by another run is refused by the unique reference.
BOOK = """
with d as (
    select * from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
        with ordinality as d(account, kind, amount, reference, note, ord)
), locked as (
    select a.id, a.ledger_seq from accounts a
    where a.id in (select account from d) order by a.id for update
), fresh as (
    select distinct on (d.account, d.reference) d.*, l.ledger_seq as last
    from d join locked l on l.id = d.account
    where not exists (
        select 1 from ledger_entries e where e.account = d.account and e.reference = d.reference
    )
    order by d.account, d.reference, d.ord
), numbered as (
    select f.*, f.last + row_number() over (partition by f.account order by f.ord) as seq
    from fresh f
), added as (
    insert into ledger_entries (account, seq, kind, amount, reference, note, created_at)
    select account, seq, kind, amount, reference, note, $6 from numbered
), moved as (
    update accounts a set ledger_seq = m.seq
    from (select account, max(seq) as seq from numbered group by account) m
    where a.id = m.account
)
select ord, seq from numbered
"""


@dataclass(frozen=True, slots=True)
class EntryDraft:
    account: str
    kind: str  # 'fee' or 'adjustment'
    amount: int
    reference: str
    note: str


@dataclass
class Booked:
    entries: list[LedgerEntry]  # booked now, in the order of the drafts
    failed: dict[str, str]  # account -> why Redis did not take its entries


async def book_entries(
    store: AccountStore, conn: Conn, drafts: Sequence[EntryDraft], now: datetime
) -> Booked:
    """Book `drafts` at `now` (idempotent on each account's reference)."""
    if not drafts:
        return Booked([], {})
    rows = await conn.fetch(
        BOOK,
        [d.account for d in drafts],
        [d.kind for d in drafts],
        [d.amount for d in drafts],
        [d.reference for d in drafts],
        [d.note for d in drafts],
        now,
    )
    seqs = {int(r["ord"]): int(r["seq"]) for r in rows}
    new = [
        LedgerEntry(d.account, seqs[n], d.kind, d.amount, d.reference, d.note, now)
        for n, d in enumerate(drafts, 1)
        if n in seqs
    ]
    return Booked(new, await apply_in_redis(store, new))


async def apply_in_redis(store: AccountStore, entries: Sequence[LedgerEntry]) -> dict[str, str]:
    """Apply `entries` (in sequence per account) to the Redis balances; returns the accounts
    that failed and why."""
    one = store.ledger.script("apply_entries")
    text = one.script if isinstance(one.script, str) else bytes(one.script).decode()
    script = PipelinedScript(store.ledger.redis, "apply_entries", text)
    failed: dict[str, str] = {}
    durability = store.ledger.durability
    keys = store.ledger.keys
    for start in range(0, len(entries), REDIS_BATCH):
        batch = entries[start : start + REDIS_BATCH]
        groups = _by_slot(batch, keys.tag if is_cluster(store.ledger.redis) else None)
        calls: list[tuple[list[str], list[int | str]]] = [
            (
                [keys.account(e.account) for e in group],
                [x for e in group for x in (e.seq, e.amount)],
            )
            for group in groups
        ]
        try:
            replies, acks = await script.run(calls, durability.wait_args() if durability.on else ())
            if any(int(acked) < durability.replicas for acked in acks):
                # applied on the master, not yet on enough replicas: not reported done (a
                # later sync applies nothing twice: entries go by sequence number)
                for e in batch:
                    failed[e.account] = f"NOT_DURABLE: fewer than {durability.replicas} replica(s)"
                continue
            results: list[Any] = [r for group in replies for r in group]
            batch = [e for group in groups for e in group]
        except RedisError:  # one account's key refused it: apply one by one, to know which
            results = []
            for e in batch:
                try:
                    results.append(
                        await store.ledger.money(
                            "apply_entry", [keys.account(e.account)], [e.seq, e.amount, e.kind]
                        )
                    )
                except RedisError as exc:
                    results.append(exc)
        for e, res in zip(batch, results, strict=True):
            if isinstance(res, Exception):
                failed[e.account] = f"{type(res).__name__}: {res}"
                continue
            status = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
            if status in ("GAP", "NO_ACCOUNT"):
                failed[e.account] = f"RuntimeError: ledger of {e.account} {status} at {e.seq}"
    return failed


def _by_slot(
    entries: Sequence[LedgerEntry], tag: Callable[[str], str] | None
) -> list[list[LedgerEntry]]:
    """The entries in script calls of at most SCRIPT_ENTRIES, per hash tag on a cluster (it
    runs a script's keys only within one slot); an account's entries keep their order (a
    call's are applied before the next call's)."""
    groups: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        groups.setdefault("" if tag is None else tag(e.account), []).append(e)
    return [
        group[start : start + SCRIPT_ENTRIES]
        for group in groups.values()
        for start in range(0, len(group), SCRIPT_ENTRIES)
    ]
