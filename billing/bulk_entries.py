"""Ledger entries for many accounts at once (a bill run's fees and roundings).

What `AccountStore.add_entry` does for one entry, for a batch in a constant number of
statements: the accounts' rows locked in id order (as add_entry locks one), entries whose
reference is already booked left out (a repeat books nothing), sequence numbers taken on
from each account's last, one INSERT and one UPDATE; then the entries are applied in Redis
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
    accounts = sorted({d.account for d in drafts})
    async with conn.transaction():
        rows = await conn.fetch(
            "select id, status, ledger_seq from accounts where id = any($1::text[])"
            " order by id for update",
            accounts,
        )
        seqs = {r["id"]: int(r["ledger_seq"]) for r in rows}
        booked = await conn.fetch(
            "select account, reference from ledger_entries e join unnest($1::text[], $2::text[])"
            " as d(account, reference) using (account, reference)",
            [d.account for d in drafts],
            [d.reference for d in drafts],
        )
        done = {(r["account"], r["reference"]) for r in booked}
        new: list[LedgerEntry] = []
        for d in drafts:
            if d.account not in seqs or (d.account, d.reference) in done:
                continue
            done.add((d.account, d.reference))
            seqs[d.account] += 1
            new.append(
                LedgerEntry(d.account, seqs[d.account], d.kind, d.amount, d.reference, d.note, now)
            )
        if new:
            await conn.copy_records_to_table(
                "ledger_entries",
                records=[
                    (e.account, e.seq, e.kind, e.amount, e.reference, e.note, e.created_at)
                    for e in new
                ],
                columns=["account", "seq", "kind", "amount", "reference", "note", "created_at"],
            )
            last = {e.account: e.seq for e in new}
            await conn.execute(
                "update accounts a set ledger_seq = v.seq"
                " from unnest($1::text[], $2::bigint[]) as v(id, seq) where a.id = v.id",
                list(last),
                list(last.values()),
            )
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
