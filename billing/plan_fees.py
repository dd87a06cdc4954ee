"""Plans' fees, charged by the bill run as ledger entries of kind fee (gross amounts, VAT
split on the documents as for every other fee).

Prepaid accounts pay in advance (terms §7.2): the run for period P, which the scheduler
makes every day of P+1, books the fee of P+1 for a plan in force on P+1's 1st (so it is
charged on the 1st), and the fee of P or P+1 for a plan started during that month, pro-rata
by days: fee * days_left // days_in_month, the start's own day counted, rounded down (in the
customer's favour). Postpaid accounts pay P's fee with P's invoice (in arrears). A month is
charged once per assignment: reference `plan/YYYY-MM/ASSIGNMENT`; an ended plan is not
refunded. The per-account path and the batched one take their drafts from `plan_fee_drafts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from billing.bulk_entries import EntryDraft
from billing.period import Period
from core.pg import Conn
from rating.account_store import AccountStore, LedgerEntry
from rating.bundles import days_left

PLANS_IN_FORCE = """
select p.id, p.account, p.plan, p.start_at, p.end_at, pl.fee, a.timezone, a.kind
from account_plans p
join plans pl on pl.name = p.plan
join accounts a on a.id = p.account
join unnest($1::text[]) as w(id) on w.id = p.account
where p.start_at <= $2 and (p.end_at is null or p.end_at > $3)
  and a.status <> 'closed' and pl.fee > 0
order by p.account, p.start_at, p.id
"""
BOOKED = """
select account, reference from ledger_entries
where account = any($1::text[]) and reference like 'plan/%'
"""


def plan_reference(period: Period, assignment: int) -> str:
    return f"plan/{period}/{assignment}"


async def plan_fee_drafts(
    conn: Conn, accounts: Sequence[str], period: Period, now: datetime
) -> list[EntryDraft]:
    """The plan fees the run for `period` at `now` books for `accounts` (not booked yet)."""
    if not accounts:
        return []
    # a prefilter only: no zone's month starts more than a day before UTC's
    earliest = period.bounds("UTC")[0] - timedelta(days=1)
    rows = await conn.fetch(PLANS_IN_FORCE, list(accounts), now, earliest)
    if not rows:  # most accounts have no plan: their entries are not read
        return []
    having = sorted({r["account"] for r in rows})
    booked = {(r["account"], r["reference"]) for r in await conn.fetch(BOOKED, having)}
    out = []
    for r in rows:
        months = [period, period.shifted(1)] if r["kind"] == "prepaid" else [period]
        for month in months:
            start, end = month.bounds(r["timezone"])
            covered = r["start_at"] < end and (r["end_at"] is None or r["end_at"] > start)
            reference = plan_reference(month, r["id"])
            if not covered or start > now or (r["account"], reference) in booked:
                continue
            amount, note = r["fee"], f"plan {r['plan']} {month}"
            if r["start_at"] > start:
                left, total = days_left(r["start_at"], r["timezone"])
                amount, note = amount * left // total, f"{note} ({left}/{total} days)"
            if amount > 0:
                out.append(EntryDraft(r["account"], "fee", -amount, reference, note))
    return out


async def charge_plan_fees(
    store: AccountStore, conn: Conn, account: str, period: Period, now: datetime
) -> list[LedgerEntry]:
    """One account's plan fees (the per-account bill run): the entries booked now."""
    out = []
    for d in await plan_fee_drafts(conn, [account], period, now):
        entry, created = await store.add_entry(
            d.account, d.kind, d.amount, d.reference, d.note, at=now
        )
        if created:
            out.append(entry)
    return out
