"""Suspending an account's outbound calls for a finding (at once for a critical one, or when a
warning's deadline passed and the behaviour went on). Emergency calls are untouched: the
ledger lets them through whatever the account's status."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from abuse import findings
from abuse.findings import Finding
from rating.account_store import AccountStore
from rating.accounts import Account, AccountNotFound, AccountStatus

log = logging.getLogger("tollgate.abuse.suspension")


@dataclass(frozen=True, slots=True)
class Suspension:
    account: Account | None  # None: the account does not exist
    holds: bool  # this finding now holds the account suspended
    changed: bool  # the account was active and is suspended now


async def suspend_account(
    pool: asyncpg.Pool, accounts: AccountStore, f: Finding, at: datetime
) -> Suspension:
    try:
        account = await accounts.get(f.account)
    except AccountNotFound:
        log.warning("finding #%d: account %s does not exist", f.id, f.account)
        return Suspension(None, False, False)
    if account.status is AccountStatus.CLOSED:
        return Suspension(account, False, False)
    if account.status is AccountStatus.ACTIVE:
        reason = f"abuse finding #{f.id}: {f.rule} {f.subject}".strip()
        account = await accounts.set_status(f.account, AccountStatus.SUSPENDED, reason, at=at)
        log.warning("suspended %s: %s (%s)", f.account, reason, f.severity.value)
        return Suspension(account, True, True)
    # Suspended already: by another finding (then this one holds it too) or by an operator
    # (then lifting this finding must not resume the account).
    async with pool.acquire() as conn:
        holds = await findings.holds_suspension(conn, f.account, f.id)
    return Suspension(account, holds, False)
