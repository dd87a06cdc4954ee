"""Which compensation rule an account's outages follow, and the other provider's rule.

Two providers' terms, two rules for an outage longer than 24 hours that the operator caused:
- `use_per_day` (the operator's terms §9.7-9.9): 1/30 of the average monthly use per started
  day, at most 12 months of outage (billing/outages.py computes it);
- `month_per_12h` (the other provider's terms §10c): the subscription period is extended by a
  month for each started 12 hours of outage beyond the first day; §10f caps a claim at a
  year's subscription, so at most 12 months. tollgate books the months as a credit of the
  account's monthly fees (the subscriptions in force on the day the outage began, in the
  account's calendar): the fee the customer would have paid for the extension.

The default rule is TOLLGATE_OUTAGE_RULE; `outage rule ACCOUNT RULE` sets an account's own
(e.g. customers taken over under the other provider's terms)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from billing.errors import BillingError
from core.pg import Conn

USE_PER_DAY = "use_per_day"
MONTH_PER_12H = "month_per_12h"
RULES = (USE_PER_DAY, MONTH_PER_12H)
DAY_S = 86_400
HALF_DAY_S = 43_200
MAX_MONTHS = 12  # §10f: no more than a year's subscription


@dataclass(frozen=True, slots=True)
class AccountRule:
    account: str
    rule: str
    set_by: str
    set_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "account": self.account,
            "rule": self.rule,
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(),
        }


def check_rule(rule: str, field: str = "rule") -> str:
    if rule not in RULES:
        raise BillingError(field, f"one of {', '.join(RULES)}, not {rule!r}")
    return rule


def months_of(started_at: datetime, ended_at: datetime) -> int:
    """§10c: months per started 12 hours beyond the first day of an outage over 24 hours
    (24 h: none; 24 h and a second: one; 36 h: one; 36 h and a second: two), at most 12."""
    seconds = int((ended_at - started_at).total_seconds())
    if seconds <= DAY_S:
        return 0
    return min(MAX_MONTHS, -(-(seconds - DAY_S) // HALF_DAY_S))


async def monthly_fees(conn: Conn, account: str, day: date) -> int:
    """The account's monthly fees in force on `day` (micro-units, gross)."""
    total = await conn.fetchval(
        "select coalesce(sum(monthly_fee), 0) from subscriptions where account = $1"
        " and started_on <= $2 and (ended_on is null or ended_on >= $2)",
        account,
        day,
    )
    return int(total)


async def set_rule(conn: Conn, account: str, rule: str, by: str, now: datetime) -> AccountRule:
    check_rule(rule)
    if await conn.fetchval("select 1 from accounts where id = $1", account) is None:
        raise BillingError("account", f"unknown account {account!r}")
    row = await conn.fetchrow(
        "insert into outage_rules (account, rule, set_by, set_at) values ($1, $2, $3, $4)"
        " on conflict (account) do update set rule = excluded.rule, set_by = excluded.set_by,"
        " set_at = excluded.set_at returning *",
        account,
        rule,
        by,
        now,
    )
    assert row is not None
    return AccountRule(row["account"], row["rule"], row["set_by"], row["set_at"])


async def clear_rule(conn: Conn, account: str) -> bool:
    """The account follows the default again; False when it had no rule of its own."""
    done = await conn.fetchval("delete from outage_rules where account = $1 returning 1", account)
    return done is not None


async def list_rules(conn: Conn) -> list[AccountRule]:
    rows = await conn.fetch("select * from outage_rules order by account")
    return [AccountRule(r["account"], r["rule"], r["set_by"], r["set_at"]) for r in rows]
