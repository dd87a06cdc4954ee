"""What a finding does, by severity: record (the row and a metric), alert (a webhook POST
that never holds detection up) and suspend outbound calls (the account's status, then a
hook that lets the call controller hang up the calls already running). Emergency calls
are untouched: the ledger lets them through whatever the account's status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg

from abuse import findings
from abuse.findings import Finding, Recorded
from abuse.metrics import AbuseMetrics
from abuse.settings import AbuseSettings, Action
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound, AccountStatus

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
    ) -> None:
        self.pool = pool
        self.accounts = accounts
        self.settings = settings
        self.metrics = metrics
        self.on_suspend = on_suspend
        self._session: aiohttp.ClientSession | None = None
        self._alerts: set[asyncio.Task[None]] = set()

    async def apply(self, rec: Recorded) -> Finding:
        """Carry out what the finding's severity calls for and has not been done yet."""
        f = rec.finding
        if rec.created or rec.escalated:
            self.metrics.findings.labels(f.rule, f.severity.value).inc()
        if not f.active:
            return f  # lifted or closed: an operator decided, the rule does not overrule
        wanted = self.settings.action_for(f.severity)
        if wanted.rank <= f.action.rank and not rec.escalated:
            return f
        suspended = False
        if wanted is Action.SUSPEND and f.action is not Action.SUSPEND:
            suspended = await self.suspend(f)
        if wanted.rank >= Action.ALERT.rank:
            self.alert(f, escalated=rec.escalated, suspended=suspended)
        if wanted.rank > f.action.rank:
            await findings.set_action(self.pool, f.id, wanted, suspended)
        return f

    async def suspend(self, f: Finding) -> bool:
        """Suspend the account's outbound calls; True if this finding now holds it."""
        try:
            account = await self.accounts.get(f.account)
        except AccountNotFound:
            log.warning("finding #%d: account %s does not exist", f.id, f.account)
            return False
        if account.status is AccountStatus.CLOSED:
            return False
        holds = True
        if account.status is AccountStatus.ACTIVE:
            reason = f"abuse finding #{f.id}: {f.rule} {f.subject}".strip()
            await self.accounts.set_status(f.account, AccountStatus.SUSPENDED, reason)
            self.metrics.suspensions.inc()
            log.warning("suspended %s: %s (%s)", f.account, reason, f.severity.value)
        else:
            # Suspended already: by another finding (then this one holds it too) or by an
            # operator (then lifting this finding must not resume the account).
            async with self.pool.acquire() as conn:
                holds = await findings.holds_suspension(conn, f.account, f.id)
        try:
            await self.on_suspend(f.account)
        except Exception:  # the controller's hook: its failure must not stop detection
            log.exception("on_suspend hook failed for %s", f.account)
        return holds

    def alert(self, f: Finding, *, escalated: bool, suspended: bool) -> None:
        """POST the finding to the webhook in the background (bounded by a short timeout)."""
        if not self.settings.webhook_url:
            return
        payload = {
            "finding": f.as_dict(),
            "action": self.settings.action_for(f.severity).value,
            "escalated": escalated,
            "suspended": suspended,
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
