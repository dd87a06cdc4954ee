"""The SIP edge's guard: failed authentications (Asterisk's security events) counted per
login and per source address in a sliding window. Past the threshold a login is LOCKED
(Asterisk refuses it from its next request: customers.sip) with a critical abuse finding
on its account, and an address is BLOCKED (recorded; an operator's command, e.g. nftables,
does the blocking). Both count in `tollgate_sip_lockouts_total`, which the alert
TollgateSipBruteForce watches.

Time is an argument (`at_ms`): the guard never reads the clock itself."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address, ip_network

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from abuse import findings
from abuse.signals import Severity, Signal
from core.env import EnvReader, SettingsError
from customers import sip
from customers.sip_settings import SipSettings
from rating.account_store import AccountStore

log = logging.getLogger("tollgate.sip_guard")
RULE = "sip_bruteforce"
KINDS = ("bad_password", "unknown_login", "acl")


@dataclass(frozen=True)
class GuardSettings:
    login_failures: int = 5  # failures of one login within the window lock it
    address_failures: int = 20  # failures from one address within the window block it
    window_s: int = 600
    block_s: int = 3600
    # Run for each blocked address, {address} and {seconds} filled in (shell-split, no
    # shell): e.g. "nft add element inet tollgate sip_blocked { {address} timeout {seconds}s }"
    block_command: str = ""
    # Never blocked (an SBC or proxy in front of Asterisk, the carrier's gateways): all its
    # users' failures would come from one address.
    trusted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for net in self.trusted:
            try:
                ip_network(net, strict=False)
            except ValueError:
                raise SettingsError(
                    "TOLLGATE_SIP_GUARD_TRUSTED", f"not an address or network: {net!r}"
                ) from None

    def is_trusted(self, address: str) -> bool:
        ip = ip_address(address)
        return any(ip in ip_network(net, strict=False) for net in self.trusted)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GuardSettings:
        r = EnvReader("TOLLGATE_SIP_GUARD_", env)
        base = cls()
        return cls(
            login_failures=r.get("LOGIN_FAILURES", int, base.login_failures),
            address_failures=r.get("ADDRESS_FAILURES", int, base.address_failures),
            window_s=r.get("WINDOW_S", int, base.window_s),
            block_s=r.get("BLOCK_S", int, base.block_s),
            block_command=r.get("BLOCK_COMMAND", str, base.block_command),
            trusted=tuple(x.strip() for x in r.get("TRUSTED", str, "").split(",") if x.strip()),
        )


class GuardMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.failures = Counter(
            "tollgate_sip_auth_failures_total",
            "Failed SIP authentications Asterisk reported, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.lockouts = Counter(
            "tollgate_sip_lockouts_total",
            "SIP logins locked and source addresses blocked after repeated failures.",
            ["what"],
            registry=self.registry,
        )
        # known label sets at 0, so increase() sees the first one
        for kind in KINDS:
            self.failures.labels(kind)
        for what in ("login", "address"):
            self.lockouts.labels(what)


@dataclass
class Window:
    """Timestamps (ms) of failures per key within the last `window_s`."""

    window_s: int
    seen: dict[str, deque[int]] = field(default_factory=dict)

    max_keys: int = 100_000  # a scanner tries endless logins: forget the quiet ones

    def add(self, key: str, at_ms: int) -> int:
        if len(self.seen) >= self.max_keys and key not in self.seen:
            self.prune(at_ms)
        q = self.seen.setdefault(key, deque())
        q.append(at_ms)
        while q and q[0] <= at_ms - self.window_s * 1000:
            q.popleft()
        return len(q)

    def clear(self, key: str) -> None:
        self.seen.pop(key, None)

    def prune(self, at_ms: int) -> None:
        """Drop keys with no failure inside the window."""
        horizon = at_ms - self.window_s * 1000
        for key in [k for k, q in self.seen.items() if not q or q[-1] <= horizon]:
            del self.seen[key]


class SipGuard:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: GuardSettings,
        sip_settings: SipSettings,
        metrics: GuardMetrics,
        accounts: AccountStore | None = None,
    ) -> None:
        """`accounts`: mirror a locked login's account to Redis at once, so inbound calls no
        longer name the login (Asterisk has no endpoint for it any more either way)."""
        self.pool = pool
        self.settings = settings
        self.sip_settings = sip_settings
        self.metrics = metrics
        self.accounts = accounts
        self.by_login = Window(settings.window_s)
        self.by_address = Window(settings.window_s)
        self.tried: dict[str, set[str]] = {}

    async def observe(self, kind: str, login: str, address: str, at_ms: int) -> list[str]:
        """Count one failure; returns what it triggered ("login:L", "address:A")."""
        self.metrics.failures.labels(kind if kind in KINDS else "acl").inc()
        done: list[str] = []
        try:
            ip_address(address)
        except ValueError:
            if address:
                log.warning(
                    "failure from an unreadable address %r: not counted by address", address
                )
            address = ""
        if login and kind == "bad_password":
            n = self.by_login.add(login, at_ms)
            if n >= self.settings.login_failures and await self._lock(login, address, n, at_ms):
                self.by_login.clear(login)
                done.append(f"login:{login}")
        if address and not self.settings.is_trusted(address):
            tried = self.tried.setdefault(address, set())
            if len(tried) < 10:
                tried.add(login)
            n = self.by_address.add(address, at_ms)
            if n >= self.settings.address_failures:
                await self._block(address, n, at_ms)
                self.by_address.clear(address)
                done.append(f"address:{address}")
        return done

    async def _lock(self, login: str, address: str, failures: int, at_ms: int) -> bool:
        async with self.pool.acquire() as conn:
            try:
                current = await sip.get(conn, login, datetime.fromtimestamp(at_ms / 1000, UTC))
            except sip.SipLoginNotFound:
                return False  # a static endpoint or a guess: the address count covers it
            if current.status != "active":
                return False
            why = f"{failures} failed authentications in {self.settings.window_s} s"
            await sip.set_status(
                conn, self.sip_settings, login, "locked", f"{why}, last from {address}"
            )
        if self.accounts is not None:
            await sip.publish(self.accounts, current.account)
        signal = Signal(
            rule=RULE,
            account=current.account,
            subject=login,
            severity=Severity.CRITICAL,
            at_ms=at_ms,
            figures={"failures": failures},
            threshold={"failures": self.settings.login_failures},
            window_s=self.settings.window_s,
            detail={"login": login, "last_address": address},
        )
        await findings.record(self.pool, signal, ())
        self.metrics.lockouts.labels("login").inc()
        log.warning("SIP login %s locked: %s, last from %s", login, why, address)
        return True

    async def _block(self, address: str, failures: int, at_ms: int) -> None:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        until = at + timedelta(seconds=self.settings.block_s)
        logins = sorted(x for x in self.tried.pop(address, set()) if x)[:10]
        await self.pool.execute(
            "insert into sip_blocked_addresses (address, failures, logins, blocked_at, until)"
            " values ($1, $2, $3, $4, $5) on conflict (address) do update set"
            " failures = excluded.failures, logins = excluded.logins,"
            " blocked_at = excluded.blocked_at, until = excluded.until",
            address,
            failures,
            logins,
            at,
            until,
        )
        self.metrics.lockouts.labels("address").inc()
        log.warning("SIP source %s blocked until %s (%d failures)", address, until, failures)
        if self.settings.block_command:
            await self._run_block_command(address)

    async def _run_block_command(self, address: str) -> None:
        argv = [
            part.replace("{address}", address).replace("{seconds}", str(self.settings.block_s))
            for part in shlex.split(self.settings.block_command)
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, env=dict(os.environ)
        )
        if await proc.wait() != 0:
            log.error("block command %r failed with %s", argv, proc.returncode)
