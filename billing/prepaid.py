"""Prepaid: an invoice per top-up (paid when issued), and the negative-balance lifecycle.

A prepaid balance goes below zero only through fees and adjustments (calls never
overspend). Negative for `foreign_after_days`: the account's foreign numbers are removed
(§5.4): released into quarantine (then back to the pool), their fees end, and a billing
event and a notice to the account record it. With the operator's `foreign_block` option,
outbound international destinations are blocked as well (every prefix outside the account's
country calling code, added to its blocked_prefixes). Negative for `close_after_months`:
the account is closed. Each action is taken once per stretch of negative balance.

The optional foreign block is reversible: once the balance is back to >= 0 (a top-up, at
once, or the next run) the prefixes the lifecycle added are removed again, and only those
(the event records them), so blocks an operator set by hand stay. Released numbers are not
given back: they went through quarantine like any released number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers

from billing.documents import Document, Draft, Kind, Line, issue
from billing.labels import line_text
from billing.negative import after_now, marks_of, since_of
from billing.number_notices import foreign_numbers, tell_released, warn_release
from billing.period import add_months
from billing.postpaid import today_of
from billing.settings import BillingSettings
from core.pg import Conn
from numbering.store import NumberStore
from rating.account_store import AccountStore, LedgerEntry
from rating.accounts import Account, AccountKind, AccountStatus

FOREIGN = "foreign_numbers_removed"
NOTICE = "notice_foreign_numbers_removed"  # an account event: what notify/ tells the customer
RESTORED = "foreign_numbers_restored"
CLOSED = "closed_negative_balance"


def topup_source(account: str, seq: int) -> str:
    return f"topup/{account}/{seq}"


async def invoice_topup(
    conn: Conn, account: Account, entry: LedgerEntry, settings: BillingSettings, now: datetime
) -> tuple[Document, bool]:
    """The invoice of one top-up: its amount is gross, the sale is the day it was paid."""
    draft = Draft(
        Kind.TOPUP_INVOICE,
        account.id,
        topup_source(account.id, entry.seq),
        account.currency,
        today_of(entry.created_at, settings),
        (topup_line(entry),),
    )
    return await issue(conn, draft, settings, now)


def topup_line(entry: LedgerEntry) -> Line:
    pl, en = line_text("topup", ref=entry.reference or entry.seq)
    return Line(pl, entry.amount, text_en=en)


async def invoice_topups(
    conn: Conn, account: Account, settings: BillingSettings, now: datetime
) -> list[Document]:
    """Invoices for every top-up and payment up to `now` that has none yet."""
    rows = await conn.fetch(
        "select e.* from ledger_entries e where e.account = $1"
        " and e.kind in ('topup', 'payment') and e.amount > 0 and e.created_at <= $2"
        " and not exists (select 1 from billing_documents d"
        "   where d.source = 'topup/' || e.account || '/' || e.seq)"
        " order by e.seq",
        account.id,
        now,
    )
    issued = []
    for r in rows:
        doc, created = await invoice_topup(conn, account, LedgerEntry(**dict(r)), settings, now)
        if created:
            issued.append(doc)
    return issued


async def negative_since(
    store: AccountStore, conn: Conn, account: str, now: datetime
) -> datetime | None:
    """When the balance last went below zero and stayed there until `now` (None: it is not
    negative at `now`).

    From the live balance in Redis (the ledger's truth) less what happened after `now`,
    walking back only as far as the stretch goes (billing/negative.py): it needs no CDRs
    older than the stretch itself, which retention may have dropped."""
    balance = (await store.live(account)).balance
    balance -= (await after_now(conn, [account], now)).get(account, 0)
    hint = (await marks_of(conn, [account])).get(account)
    return await since_of(conn, account, balance, now, hint)


def foreign_prefixes(country: str) -> tuple[str, ...]:
    """Every E.164 prefix outside the country's calling code (48: 1-3, 5-9, 40-47, 49)."""
    code = str(phonenumbers.country_code_for_region(country))
    out: list[str] = []
    for i, digit in enumerate(code):
        out.extend(code[:i] + d for d in "0123456789" if d != digit and (i or d != "0"))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LifecycleAction:
    account: str
    kind: str
    negative_since: datetime
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "action": self.kind,
            "negative_since": self.negative_since.isoformat(),
            **self.detail,
        }


async def _taken(conn: Conn, account: str, kind: str, since: datetime) -> bool:
    """Whether `kind` was already done during the stretch that began at `since`."""
    found = await conn.fetchval(
        "select 1 from billing_events where account = $1 and kind = $2 and effective_at >= $3",
        account,
        kind,
        since,
    )
    return found is not None


async def _record(conn: Conn, action: LifecycleAction, now: datetime) -> None:
    await conn.execute(
        "insert into billing_events (account, kind, negative_since, effective_at, detail,"
        " created_at) values ($1, $2, $3, $4, $5, $4) on conflict do nothing",
        action.account,
        action.kind,
        action.negative_since,
        now,
        json.dumps(action.detail),
    )


async def restore_foreign(
    store: AccountStore, conn: Conn, account: Account, now: datetime
) -> LifecycleAction | None:
    """Lift the foreign block of a stretch of negative balance that is over (idempotent:
    the restore is keyed by the stretch it ends). The caller knows the balance is >= 0."""
    block = await conn.fetchrow(
        "select b.negative_since, b.detail from billing_events b where b.account = $1"
        " and b.kind = $2 and not exists (select 1 from billing_events r where"
        " r.account = b.account and r.kind = $3 and r.negative_since = b.negative_since)"
        " order by b.effective_at desc limit 1",
        account.id,
        FOREIGN,
        RESTORED,
    )
    if block is None or account.status is AccountStatus.CLOSED:
        return None
    added = set(json.loads(block["detail"]).get("blocked_prefixes_added", []))
    removed = sorted(added & set(account.blocked_prefixes))
    kept = tuple(p for p in account.blocked_prefixes if p not in added)
    if removed:
        await store.update(account.id, event=RESTORED, at=now, blocked_prefixes=kept)
    action = LifecycleAction(
        account.id, RESTORED, block["negative_since"], {"blocked_prefixes_removed": removed}
    )
    await _record(conn, action, now)
    return action


async def _remove_foreign(
    store: AccountStore,
    conn: Conn,
    account: Account,
    since: datetime,
    settings: BillingSettings,
    now: datetime,
) -> LifecycleAction:
    """§5.4: release the account's foreign numbers (and block foreign calls if the operator
    chose to), record it once for the stretch, and leave the customer's notice."""
    numbers = NumberStore(store.pool, store, settings.numbering)
    released = await numbers.release_foreign(
        account.id, at=now, reason=f"prepaid balance negative since {since.isoformat()} (§5.4)"
    )
    added: list[str] = []
    if settings.foreign_block:
        added = [p for p in foreign_prefixes(account.country) if p not in account.blocked_prefixes]
        blocked = tuple(sorted({*account.blocked_prefixes, *added}))
        await store.update(account.id, event=FOREIGN, at=now, blocked_prefixes=blocked)
    detail = {"numbers_released": released, "blocked_prefixes_added": added}
    action = LifecycleAction(account.id, FOREIGN, since, detail)
    await _record(conn, action, now)
    if released:
        await conn.execute(
            "insert into account_events (account, event, detail, at) values ($1, $2, $3, $4)",
            account.id,
            NOTICE,
            json.dumps({"numbers": released, "negative_since": since.isoformat()}),
            now,
        )
        days = settings.foreign_after_days
        await tell_released(conn, settings.notify, account, released, since, days, now)
    return action


async def _warn_foreign(
    store: AccountStore,
    conn: Conn,
    account: Account,
    since: datetime,
    settings: BillingSettings,
    now: datetime,
) -> None:
    """§5.4 ahead of time: tell the customer which foreign numbers go, and when (once per
    stretch; nothing to tell when it has none)."""
    numbers = await foreign_numbers(conn, account.id)
    if numbers:
        balance = (await store.live(account.id)).balance
        release_at = since + timedelta(days=settings.foreign_after_days)
        await warn_release(conn, settings.notify, account, numbers, since, release_at, balance, now)


async def lifecycle(
    store: AccountStore, conn: Conn, account: Account, settings: BillingSettings, now: datetime
) -> list[LifecycleAction]:
    """Take the actions a negative balance calls for at `now` (idempotent)."""
    if account.kind is not AccountKind.PREPAID or account.status is AccountStatus.CLOSED:
        return []
    return await act_on_balance(
        store, conn, account, await negative_since(store, conn, account.id, now), settings, now
    )


async def act_on_balance(
    store: AccountStore,
    conn: Conn,
    account: Account,
    since: datetime | None,
    settings: BillingSettings,
    now: datetime,
) -> list[LifecycleAction]:
    """The lifecycle's actions for a prepaid account whose stretch of negative balance
    began at `since` (None: not negative at `now`)."""
    if since is None:
        restored = await restore_foreign(store, conn, account, now)
        return [] if restored is None else [restored]
    done = []
    removal = since + timedelta(days=settings.foreign_after_days)
    if now < removal:
        await _warn_foreign(store, conn, account, since, settings, now)
    if now >= removal and not await _taken(conn, account.id, FOREIGN, since):
        action = await _remove_foreign(store, conn, account, since, settings, now)
        account = await store.get(account.id)
        done.append(action)
    closing = add_months(since, settings.close_after_months, account.timezone)
    if now >= closing and not await _taken(conn, account.id, CLOSED, since):
        why = f"prepaid balance negative since {since.isoformat()}"
        numbers = NumberStore(store.pool, store, settings.numbering)
        await numbers.close_account(account.id, why, at=now, actor="billing")
        action = LifecycleAction(account.id, CLOSED, since, {"reason": why})
        await _record(conn, action, now)
        done.append(action)
    return done
