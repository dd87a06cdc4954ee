"""What a bill run needs to know about a batch of accounts, one statement each.

Every read takes the batch's account ids as an array (and per-account bounds as parallel
arrays), so a batch of a thousand accounts costs what one account used to, and the CDR
reads name the period's months so only those partitions are scanned. A table read by a few
of the batch's accounts (lifecycle events, marks) is joined with the array rather than
filtered by `= any(...)`: PostgreSQL compares every row with every element of the array
(a thousand comparisons a row), where a join hashes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from billing.documents import Document, Kind
from billing.fees import Subscription
from billing.period import Period
from billing.postpaid import ROUNDING_REF
from core.pg import Conn
from rating.account_store import LedgerEntry
from rating.accounts import Account

FEES_DUE = """
select s.* from unnest($1::text[]) as a(account) join subscriptions s using (account)
where s.started_on <= $2
  and (s.ended_on is null or s.ended_on >= $3)
  and not exists (select 1 from ledger_entries e
                  where e.account = s.account and e.reference = 'fee/' || $4 || '/' || s.name)
order by s.account, s.name
"""
TOPUPS_UNINVOICED = """
select e.* from ledger_entries e
where e.account = any($1::text[]) and e.kind in ('topup', 'payment') and e.amount > 0
  and e.created_at <= $2
  and not exists (select 1 from billing_documents d
                  where d.source = 'topup/' || e.account || '/' || e.seq)
order by e.account, e.seq
"""
# The period's connected calls with a charge, per account and prefix, as listing.BILLED
# prices them (the last re-rating of a call, if any); the name is the last call's.
CALL_LINES = """
with a as (
    select * from unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
        as a(account, start_at, end_at)
), r as (
    select distinct on (x.account, rc.switch, rc.call_id) x.account, rc.switch, rc.call_id,
           rc.charge
    from rerate_calls rc join rerates x on x.id = rc.rerate_id
    where x.account = any($1::text[])
    order by x.account, rc.switch, rc.call_id, rc.rerate_id desc
)
select c.account, c.prefix, count(*) as calls, sum(c.billsec)::bigint as billsec,
       sum(coalesce(r.charge, c.cost))::bigint as charge,
       (array_agg(c.rate_name order by c.started_at desc, c.call_id desc))[1] as name
from cdrs c
join a on a.account = c.account and c.started_at >= a.start_at and c.started_at < a.end_at
left join r on r.account = c.account and r.switch = c.switch and r.call_id = c.call_id
where c.account = any($1::text[]) and c.started_at >= $4 and c.started_at < $5
  and c.state = 'finished' and c.answered and coalesce(r.charge, c.cost) <> 0
group by c.account, c.prefix
"""
# The period's fees and the other charges and credits booked in it (postpaid.invoice_lines)
ENTRY_LINES = """
select e.account, e.seq, e.kind, e.amount, e.reference, e.note from ledger_entries e
join unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) as a(account, start_at, end_at)
  on a.account = e.account
where e.kind in ('fee', 'adjustment') and (
    e.reference like $4
    or (e.created_at >= a.start_at and e.created_at < a.end_at
        and coalesce(e.reference, '') not like 'fee/%'
        and coalesce(e.reference, '') not like 'rerate/%'
        and coalesce(e.reference, '') not like 'rounding/%'))
order by e.account, e.seq
"""
# Documents whose rounding entry (rounding.rounding_reference) is not booked: only those are
# read whole, so a repeat run reads no postpaid invoice again.
UNROUNDED = """
select d.* from billing_documents d
where d.source = any($1::text[]) and d.exact is not null and d.exact <> d.gross
  and not exists (select 1 from ledger_entries e
                  where e.account = d.account and e.reference = $2 || d.source)
order by d.id
"""


@dataclass(frozen=True, slots=True)
class CallLine:
    account: str
    prefix: str
    calls: int
    billsec: int
    charge: int
    name: str


@dataclass(frozen=True, slots=True)
class EntryLine:
    account: str
    kind: str
    amount: int
    reference: str | None
    note: str
    seq: int


@dataclass(frozen=True, slots=True)
class Owed:
    """An invoice or credit note, as allocating payments needs it (postpaid.Amounts)."""

    id: int
    account: str
    kind: Kind
    gross: int
    corrects: int | None
    due_date: date | None


async def fees_due(conn: Conn, accounts: Sequence[str], period: Period) -> list[Subscription]:
    """Subscriptions active in `period` whose fee for it is not booked yet."""
    rows = await conn.fetch(
        FEES_DUE, list(accounts), period.last_day, period.first_day, str(period)
    )
    return [Subscription(**dict(r)) for r in rows]


async def subscriptions(conn: Conn, accounts: Sequence[str]) -> list[Subscription]:
    rows = await conn.fetch(
        "select * from subscriptions where account = any($1::text[]) order by account, name",
        list(accounts),
    )
    return [Subscription(**dict(r)) for r in rows]


async def uninvoiced_topups(
    conn: Conn, accounts: Sequence[str], now: datetime
) -> list[LedgerEntry]:
    rows = await conn.fetch(TOPUPS_UNINVOICED, list(accounts), now)
    return [LedgerEntry(**dict(r)) for r in rows]


def _bounds(
    accounts: Sequence[Account], period: Period
) -> tuple[list[str], list[datetime], list[datetime]]:
    spans = [period.bounds(a.timezone) for a in accounts]
    return [a.id for a in accounts], [s for s, _ in spans], [e for _, e in spans]


async def call_lines(conn: Conn, accounts: Sequence[Account], period: Period) -> list[CallLine]:
    """Each account's calls of `period` (in its zone) with a charge, by prefix."""
    if not accounts:
        return []
    ids, starts, ends = _bounds(accounts, period)
    rows = await conn.fetch(CALL_LINES, ids, starts, ends, min(starts), max(ends))
    return [CallLine(**dict(r)) for r in rows]


async def entry_lines(conn: Conn, accounts: Sequence[Account], period: Period) -> list[EntryLine]:
    if not accounts:
        return []
    ids, starts, ends = _bounds(accounts, period)
    rows = await conn.fetch(ENTRY_LINES, ids, starts, ends, f"fee/{period}/%")
    return [EntryLine(**dict(r)) for r in rows]


async def documents_by_source(conn: Conn, sources: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "select source from billing_documents where source = any($1::text[])", list(sources)
    )
    return {r["source"] for r in rows}


async def owed_documents(conn: Conn, accounts: Sequence[str]) -> dict[str, list[Owed]]:
    """Each account's invoices and credit notes, in the order they were issued."""
    rows = await conn.fetch(
        "select id, account, kind, gross, corrects, due_date from billing_documents"
        " where account = any($1::text[]) and kind in ('invoice', 'credit_note') order by id",
        list(accounts),
    )
    out: dict[str, list[Owed]] = {}
    for r in rows:
        out.setdefault(r["account"], []).append(Owed(**{**dict(r), "kind": Kind(r["kind"])}))
    return out


async def paid_totals(conn: Conn, accounts: Sequence[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "select account, sum(amount)::bigint as paid from ledger_entries"
        " where account = any($1::text[]) and kind in ('payment', 'topup') group by account",
        list(accounts),
    )
    return {r["account"]: int(r["paid"]) for r in rows}


async def open_foreign_blocks(conn: Conn, accounts: Sequence[str]) -> set[str]:
    """Accounts with a foreign block of the lifecycle not lifted yet."""
    rows = await conn.fetch(
        "select distinct b.account from unnest($1::text[]) as a(account)"
        " join billing_events b using (account)"
        " where b.kind = 'foreign_numbers_removed' and not exists (select 1 from billing_events r"
        " where r.account = b.account and r.kind = 'foreign_numbers_restored'"
        " and r.negative_since = b.negative_since)",
        list(accounts),
    )
    return {r["account"] for r in rows}


async def lifecycle_taken(conn: Conn, accounts: Sequence[str]) -> dict[str, dict[str, datetime]]:
    """The last time each lifecycle action was taken, per account and kind."""
    rows = await conn.fetch(
        "select account, kind, max(effective_at) as last"
        " from unnest($1::text[]) as a(account) join billing_events using (account)"
        " group by account, kind",
        list(accounts),
    )
    out: dict[str, dict[str, datetime]] = {}
    for r in rows:
        out.setdefault(r["account"], {})[r["kind"]] = r["last"]
    return out


async def unrounded(conn: Conn, sources: Sequence[str]) -> list[Document]:
    """The documents of `sources` with a rounding not booked yet."""
    if not sources:
        return []
    rows = await conn.fetch(UNROUNDED, list(sources), ROUNDING_REF)
    return [Document.from_row(r) for r in rows]
