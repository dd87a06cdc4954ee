"""What a finding does, by severity: record (the row and a metric), alert (a webhook POST
that never holds detection up), warn (the customer is told to stop by a deadline; the
scheduler suspends if it goes on, abuse/warnings.py) and suspend outbound calls (the
account's status, then a hook that lets the call controller hang up the calls already
running). A new finding repeating an earlier episode proposes closing the account to an
operator. Emergency calls are untouched: the ledger lets them through whatever the
account's status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg

from abuse import customer_notices, findings, warnings
from abuse.findings import Finding, Recorded
from abuse.metrics import AbuseMetrics
from abuse.settings import AbuseSettings, Action
from abuse.suspension import suspend_account
from notify.settings import NotifySettings
from rating.account_store import AccountStore
from rating.accounts import AccountStatus

log = logging.getLogger("tollgate.abuse.actions")

SuspendHook = Callable[[str], Awaitable[None]]


async def no_hook(account: str) -> None:
    """Default on_suspend: nothing to hang up (no call controller attached)."""


class Actions:
    def __init__(
        self,
        pool: asyncpg.Pool,
        accounts: AccountStore,
        settings: AbuseSettings,
        metrics: AbuseMetrics,
        on_suspend: SuspendHook = no_hook,
        notify: NotifySettings | None = None,
    ) -> None:
        self.pool = pool
        self.accounts = accounts
        self.settings = settings
        self.metrics = metrics
        self.on_suspend = on_suspend
        self.notify = notify or NotifySettings.from_env()
        self._session: aiohttp.ClientSession | None = None
        self._alerts: set[asyncio.Task[None]] = set()

    async def apply(self, rec: Recorded, at: datetime) -> Finding:
        """Carry out what the finding's severity calls for and has not been done yet; `at`
        is the instant of the event that fired it."""
        f = rec.finding
        if rec.created or rec.escalated:
            self.metrics.findings.labels(f.rule, f.severity.value).inc()
        if not f.active:
            return f  # lifted or closed: an operator decided, the rule does not overrule
        wanted = self.settings.action_for(f.severity)
        if wanted.rank <= f.action.rank and not rec.escalated:
            return f
        suspended = False
        detail: dict[str, Any] = {}
        if wanted is Action.SUSPEND and f.action is not Action.SUSPEND:
            suspended = await self.suspend(f, at)
        continues: int | None = None
        if wanted is Action.WARN and f.action.rank < Action.WARN.rank:
            warned = await warnings.warn(
                self.pool, self.accounts, self.settings, self.notify, f, at
            )
            continues = warned.continues
            if warned.deadline is not None:
                self.metrics.warnings.inc()
                detail["deadline"] = warned.deadline.isoformat()
            if continues is not None:
                detail["continues"] = continues
        if rec.created and wanted.rank >= Action.WARN.rank and continues is None:
            prior = await warnings.propose_closure_on_repeat(self.pool, self.settings, f, at)
            if prior is not None:
                self.metrics.closures_proposed.inc()
                detail["closure_proposed"] = True
        if wanted.rank >= Action.ALERT.rank:
            self.alert(f, escalated=rec.escalated, suspended=suspended, detail=detail)
        if wanted.rank > f.action.rank:
            await findings.set_action(self.pool, f.id, wanted, suspended, at=at, detail=detail)
        return f

    async def suspend(self, f: Finding, at: datetime) -> bool:
        """Suspend the account's outbound calls; True if this finding now holds it."""
        s = await suspend_account(self.pool, self.accounts, f, at)
        if s.account is None or s.account.status is AccountStatus.CLOSED:
            return False
        if s.changed:
            self.metrics.suspensions.inc()
            async with self.pool.acquire() as conn, conn.transaction():
                await customer_notices.suspension(conn, self.notify, s.account, f, "critical", at)
        try:
            await self.on_suspend(f.account)
        except Exception:  # the controller's hook: its failure must not stop detection
            log.exception("on_suspend hook failed for %s", f.account)
        return s.holds

    def alert(
        self,
        f: Finding,
        *,
        escalated: bool,
        suspended: bool,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """POST the finding to the webhook in the background (bounded by a short timeout)."""
        if not self.settings.webhook_url:
            return
        payload = {
            "finding": f.as_dict(),
            "action": self.settings.action_for(f.severity).value,
            "escalated": escalated,
            "suspended": suspended,
            **(detail or {}),
        }
        task = asyncio.create_task(self._post(payload))
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        url = self.settings.webhook_url
        try:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
                )
            async with self._session.post(url, json=payload) as resp:
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=resp.reason or ""
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.alert_failures.inc()
            log.warning(
                "abuse alert for finding #%s not delivered: %s",
                payload["finding"]["id"],
                exc or type(exc).__name__,
            )

    async def flush(self) -> None:
        """Wait for alerts under way (each is bounded by the webhook timeout)."""
        if self._alerts:
            await asyncio.gather(*self._alerts)

    async def close(self) -> None:
        await self.flush()
        if self._session is not None:
            await self._session.close()
            self._session = None
