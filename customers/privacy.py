"""Personal data of a customer: exported for its subject (GDPR art. 15 and 20), and
anonymised once nothing requires keeping it.

What is kept, and why (also in the README):
- invoices and credit notes keep the buyer's name, address and tax id as issued: they are
  immutable accounting documents, kept 5 years from the end of their year (tax law);
- CDRs and ledger entries stay, keyed by the account id (a pseudonym once the customer
  record is anonymised): needed for complaints (§12: 12 months) and traffic-data retention;
- the customer record loses name, address, e-mail, phone and tax ids; its change history
  loses the values it recorded. The record itself (id, kind, verification, contract dates)
  stays, so documents and accounts still point at something.

Anonymisation is refused while an account of the customer is not closed, and until
`retention_months` have passed since the last activity (the latest of: its accounts' last
ledger entry, last call, last change)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from core.pg import Conn
from customers.model import CustomerConflict, CustomerNotFound
from customers.store import get_customer

RETENTION_MONTHS = 12  # §12: complaints within 12 months; traffic data kept as long
ANONYMOUS = "anonymised"


@dataclass(frozen=True, slots=True)
class Retention:
    months: int = RETENTION_MONTHS

    def allows(self, last_activity: datetime, now: datetime) -> bool:
        """Whole calendar months (UTC) between the last activity and now."""
        a, n = last_activity.astimezone(ZoneInfo("UTC")), now.astimezone(ZoneInfo("UTC"))
        months = (n.year - a.year) * 12 + n.month - a.month
        if (n.day, n.time()) < (a.day, a.time()):
            months -= 1
        return months >= self.months


async def export_personal_data(pool: asyncpg.Pool, customer_id: str) -> dict[str, Any]:
    """Everything tollgate holds about the customer, as one JSON-ready document."""
    customer = await get_customer(pool, customer_id)
    accounts = await pool.fetch(
        "select id, kind, status, currency, country, timezone, numbers, caller_id, created_at"
        " from accounts where customer_id = $1 order by id",
        customer_id,
    )
    ids = [a["id"] for a in accounts]
    entries = await pool.fetch(
        "select account, seq, kind, amount, reference, note, created_at from ledger_entries"
        " where account = any($1::text[]) order by account, seq",
        ids,
    )
    documents = await pool.fetch(
        "select account, number, kind, currency, gross, issue_date from billing_documents"
        " where account = any($1::text[]) order by issued_at, id",
        ids,
    )
    calls = await pool.fetch(
        "select account, count(*) as calls, min(started_at) as first, max(started_at) as last"
        " from cdrs where account = any($1::text[]) group by account order by account",
        ids,
    )
    events = await pool.fetch(
        "select event, actor, detail, at from customer_events where customer = $1 order by id",
        customer_id,
    )
    return {
        "customer": customer.as_dict(),
        "accounts": [_plain(a) for a in accounts],
        "ledger_entries": [_plain(e) for e in entries],
        "documents": [_plain(d) for d in documents],
        # the calls themselves: the panel's CSV export of each account's CDRs
        "calls": [_plain(c) for c in calls],
        "history": [_plain(e) for e in events],
    }


async def anonymise(
    pool: asyncpg.Pool,
    customer_id: str,
    *,
    at: datetime,
    actor: str,
    retention: Retention = Retention(),
) -> datetime:
    """Erase the customer's personal data (see the module's docstring); returns the last
    activity that made it allowed. Refused (CustomerError) while it is not."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select anonymised_at, updated_at from customers where id = $1 for update",
            customer_id,
        )
        if row is None:
            raise CustomerNotFound(customer_id)
        if row["anonymised_at"] is not None:
            raise CustomerConflict("id", f"customer {customer_id!r} is anonymised already")
        open_accounts = await conn.fetch(
            "select id from accounts where customer_id = $1 and status <> 'closed' order by id",
            customer_id,
        )
        if open_accounts:
            names = ", ".join(r["id"] for r in open_accounts)
            raise CustomerConflict("accounts", f"close them first: {names}")
        last = await _last_activity(conn, customer_id, row["updated_at"])
        if not retention.allows(last, at):
            raise CustomerConflict(
                "retention",
                f"last activity {last.isoformat()}: kept {retention.months} months after it",
            )
        await conn.execute(
            "update customers set legal_name = $2, email = $3, phone = null, street = '',"
            " postal_code = '', city = '', tax_id = null, vat_id = null,"
            " verification_note = '', anonymised_at = $4, updated_at = $4 where id = $1",
            customer_id,
            ANONYMOUS,
            f"{ANONYMOUS}@invalid",
            at,
        )
        await conn.execute(
            "update customer_events set detail = '{}' where customer = $1", customer_id
        )
        await conn.execute(
            "insert into customer_events (customer, event, actor, detail, at)"
            " values ($1, 'anonymised', $2, '{}', $3)",
            customer_id,
            actor,
            at,
        )
    return last


async def _last_activity(conn: Conn, customer_id: str, updated_at: datetime) -> datetime:
    found = await conn.fetchrow(
        "select (select max(e.created_at) from ledger_entries e join accounts a"
        "  on a.id = e.account where a.customer_id = $1) as entry,"
        " (select max(c.ended_at) from cdrs c join accounts a"
        "  on a.id = c.account where a.customer_id = $1) as call,"
        " (select max(updated_at) from accounts where customer_id = $1) as account",
        customer_id,
    )
    assert found is not None  # a select without from always yields its row
    moments: list[datetime] = [updated_at, *(v for v in found.values() if v is not None)]
    return max(moments)


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
