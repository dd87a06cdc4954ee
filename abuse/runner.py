"""The detector process: reads every shard's CDR stream (and the inbound stream) through its
own consumer group, runs the detectors, stores findings, acts, then acknowledges.

Per stream and batch: the batch's window updates go to Redis in one pipeline of script
calls, each running up to `SCRIPT_EVENTS` events of one hash tag in order (each event
atomic and idempotent on its id); the detectors judge the figures;
each signal becomes a finding (or a hit on one) in PostgreSQL and its actions run; only
then is the batch acknowledged. A crash anywhere leaves entries pending: they are read
again, count nothing twice, and re-store their findings harmlessly."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError, ResponseError

from abuse import findings
from abuse.actions import Actions, SuspendHook, no_hook
from abuse.detectors import DETECTORS
from abuse.detectors.base import Detector, Evaluate, Scope
from abuse.events import CallEvent, InboundEvent
from abuse.findings import Finding
from abuse.gc_pause import CollectorPause
from abuse.metrics import AbuseMetrics
from abuse.overrides import Thresholds
from abuse.params import RuleParams
from abuse.settings import AbuseSettings
from abuse.signals import Signal
from abuse.window import AccountKeys, Plan, bind, command, script_text
from cdr.stream import CdrStream, Entry, wait_for_new
from core.redis_cluster import ClusterFunction, is_cluster, is_missing_function
from rating.keys import Keyspace, parse_ref
from runtime.services import Services

log = logging.getLogger("tollgate.abuse")
Command = tuple[list[str], list[Any]]  # KEYS and ARGV of one script call

EVIDENCE_CALLS = 50  # call ids kept in a finding's evidence
# Events per script call: a call's fixed cost is paid once for them, and Redis is held at
# most this many events' work (~0.1 ms each) at a time, so authorizations are not held up.
SCRIPT_EVENTS = 32
ACCOUNTS_KEPT = 100_000  # accounts whose keys, scope and thresholds are kept at hand
ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def inbound_stream_key(keys: Keyspace) -> str:
    return keys.inbound_stream()


@dataclass(frozen=True, slots=True)
class _Job:
    account: str
    plan: Plan
    checks: list[Evaluate]


@dataclass(frozen=True, slots=True)
class _Account:
    seen: str  # its set of event ids seen
    scope: Scope
    rules: list[tuple[Detector[Any], RuleParams]]  # the enabled rules and their thresholds


def _by_account(jobs: list[_Job]) -> list[Plan]:
    """The plans of one hash tag, each account's together and in order: a script call then
    sets each key's TTL and trims each window once for all of an account's events in it
    (accounts share no keys, so only the order within an account matters)."""
    grouped: dict[str, list[Plan]] = {}
    for job in jobs:
        grouped.setdefault(job.account, []).append(job.plan)
    return [plan for plans in grouped.values() for plan in plans]


class AbuseDetector:
    def __init__(
        self,
        services: Services,
        settings: AbuseSettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        on_suspend: SuspendHook = no_hook,
        detectors: dict[str, Detector[Any]] | None = None,
    ) -> None:
        if services.pool is None:
            raise RuntimeError("the abuse detector needs PostgreSQL")
        self.redis = services.redis
        self.pool = services.pool
        self.keys = services.settings.keyspace
        self.home_default = services.settings.ledger.default_country
        self.settings = settings or AbuseSettings()
        self.detectors = detectors if detectors is not None else DETECTORS
        self.metrics = AbuseMetrics(registry, rules=self.detectors)
        self.thresholds = Thresholds(self.pool, self.settings)
        self.actions = Actions(
            self.pool, services.accounts, self.settings, self.metrics, on_suspend
        )
        self.script = self.redis.register_script(script_text())
        # cluster pipelines call the same script as a function (no EVALSHA there)
        self.function = (
            ClusterFunction("observe", script_text()) if is_cluster(self.redis) else None
        )
        s = self.settings
        self.streams = [
            CdrStream(self.redis, self.keys.cdr_stream(t), s.group, s.consumer)
            for t in self.keys.tags()
        ]
        self.inbound: CdrStream | None = None
        if s.inbound_stream:
            self.inbound = CdrStream(self.redis, inbound_stream_key(self.keys), s.group, s.consumer)
        self._homes: dict[str, str] = {}
        self.collector = CollectorPause()
        self._accounts: dict[str, _Account] = {}
        self._accounts_of: object = None  # the thresholds' version they were made with
        self._written: dict[tuple[str, str, str, str], tuple[int, float, int]] = {}

    @property
    def all_streams(self) -> list[CdrStream]:
        """Inbound first: within a round, the bait is known before the callbacks."""
        return [*([self.inbound] if self.inbound else []), *self.streams]

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Detect until `stop` is set; Redis or PostgreSQL outages are waited out."""
        delay = self.settings.backoff_min_s
        while not stop.is_set():
            try:
                seen = await self.drain_once()
                delay = self.settings.backoff_min_s
                if not seen and not stop.is_set():
                    await wait_for_new(
                        self.redis,
                        self.all_streams,
                        self.settings.batch_size,
                        self.settings.block_ms,
                    )
                continue
            except ERRORS as exc:
                log.warning("abuse detection paused: %s; retrying in %.1f s", exc, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.settings.backoff_max_s)

    async def drain_once(self) -> int:
        """Process everything available now (claimed, own pending, new); returns how many
        entries were processed and acknowledged."""
        await self.thresholds.refresh()
        done = await self._drain(self.inbound) if self.inbound else 0
        # Shards side by side: one shard's plans are built while Redis runs another's. An
        # account lives in one shard, so its events stay in order.
        results = await asyncio.gather(
            *(self._drain(s) for s in self.streams), return_exceptions=True
        )
        for r in results:  # every shard ran to its end; now report the first failure
            if isinstance(r, BaseException):
                raise r
        return done + sum(r for r in results if isinstance(r, int))

    async def close(self) -> None:
        await self.actions.close()

    async def _drain(self, stream: CdrStream) -> int:
        size = self.settings.batch_size
        await stream.ensure_group()
        if stream.claim_due(self.settings.claim_idle_ms):
            await stream.claim_idle(self.settings.claim_idle_ms, size)
        done, after = 0, "0"
        while stream.may_have_pending and (batch := await stream.read_pending(size, after)):
            await self._process(stream, batch)
            done, after = done + len(batch), batch[-1].id
        while batch := await stream.read_new(size):
            await self._process(stream, batch)
            done += len(batch)
        return done

    # -- one batch -----------------------------------------------------------------------------

    async def _process(self, stream: CdrStream, entries: list[Entry]) -> None:
        with self.collector.paused():
            await self._batch(stream, entries)

    async def _batch(self, stream: CdrStream, entries: list[Entry]) -> None:
        inbound = stream is self.inbound
        parsed = (self._event(entry, inbound) for entry in entries)
        events = [e for e in parsed if e is not None]
        if inbound:
            await self._load_homes({e.account for e in events})
        # A stream's accounts share its hash tag; the inbound stream's do not (Cluster).
        by_tag: dict[str, list[_Job]] = {}
        for ev in events:
            job = self._plan(ev)
            if job is not None:
                by_tag.setdefault(self.keys.tag(ev.account), []).append(job)
        calls = [
            plans[i : i + SCRIPT_EVENTS]
            for plans in (_by_account(tagged) for tagged in by_tag.values())
            for i in range(0, len(plans), SCRIPT_EVENTS)
        ]
        commands = [command(plans) for plans in calls]
        signals: list[Signal] = []
        if calls:
            replies = await self._observe(commands)
            for plans, reply in zip(calls, replies, strict=True):
                bind(plans, reply)
            # judging only reads the figures: every check runs before any finding is stored
            signals = [
                signal
                for tagged in by_tag.values()
                for job in tagged
                for check in job.checks
                for signal in check()
            ]
        for signal in signals:
            await self._found(signal)
        await stream.ack([e.id for e in entries])
        (self.metrics.inbound if inbound else self.metrics.processed).inc(len(entries))

    async def _observe(self, commands: list[Command]) -> list[Any]:
        """Every script call (a batch of plans each) in one pipeline; the replies in order."""
        if self.function is None:
            pipe = self.redis.pipeline(transaction=False)
            for keys, argv in commands:
                await self.script(keys=keys, args=argv, client=pipe)
            return list(await pipe.execute())
        try:
            return await self._fcall(self.function, commands)
        except ResponseError as exc:
            if not is_missing_function(exc):
                raise
        # a node that never had it (added since): load everywhere and run the batch again;
        # the plans are guarded by event id, so nothing counts twice
        await self.function.load(self.redis, again=True)
        return await self._fcall(self.function, commands)

    async def _fcall(self, function: ClusterFunction, commands: list[Command]) -> list[Any]:
        await function.load(self.redis)
        pipe = self.redis.pipeline(transaction=False)
        for keys, argv in commands:
            function.queue(pipe, keys, argv)
        return list(await pipe.execute())

    def _event(self, entry: Entry, inbound: bool) -> CallEvent | InboundEvent | None:
        if not entry.flat:
            return None  # deleted from the stream while pending
        try:
            fields = entry.fields()
            if inbound:
                return InboundEvent.from_fields(entry.id, fields)
            ev = CallEvent.from_fields(fields)
        except ValueError as exc:  # BadEvent, or BadCdr for bytes that are not UTF-8
            log.warning("abuse detector skips %s %s: %s", entry.stream, entry.id, exc)
            return None
        return ev if ev.counted else None

    def _plan(self, ev: CallEvent | InboundEvent) -> _Job | None:
        account = self._account(ev.account)
        event_id = f"in:{ev.id}" if isinstance(ev, InboundEvent) else ev.call_id
        plan = Plan(account.seen, event_id, ev.at_ms, self.settings.seen_keep_s * 1000)
        scope = account.scope
        checks: list[Evaluate] = []
        if isinstance(ev, InboundEvent):
            for detector, params in account.rules:
                check = detector.on_inbound(ev, params, plan, scope)
                if check is not None:
                    checks.append(check)
        else:
            for detector, params in account.rules:
                check = detector.on_call(ev, params, plan, scope)
                if check is not None:
                    checks.append(check)
        return _Job(ev.account, plan, checks) if plan else None

    def _account(self, account: str) -> _Account:
        """What every event of an account needs, kept until the thresholds are reloaded."""
        if self._accounts_of is not self.thresholds.version:
            self._accounts.clear()
            self._accounts_of = self.thresholds.version
        found = self._accounts.get(account)
        if found is None:
            if len(self._accounts) >= ACCOUNTS_KEPT:
                self._accounts.clear()
            keys = AccountKeys(self.keys, account)
            scope = Scope(account, keys, self._homes.get(account, self.home_default))
            rules = [
                (detector, params)
                for name, detector in self.detectors.items()
                if (params := self.thresholds.params(account, name)).enabled
            ]
            found = self._accounts[account] = _Account(keys("seen"), scope, rules)
        return found

    async def _load_homes(self, accounts: set[str]) -> None:
        """Home countries of accounts receiving inbound calls (for "foreign")."""
        missing = sorted(a for a in accounts if a not in self._homes)
        if not missing:
            return
        pipe = self.redis.pipeline(transaction=False)
        for account in missing:
            pipe.hget(self.keys.account(account), "country")
        for account, country in zip(missing, await pipe.execute(), strict=True):
            if country:
                self._homes[account] = country.decode() if isinstance(country, bytes) else country
                self._accounts.pop(account, None)  # its scope names the home country

    # -- findings ------------------------------------------------------------------------------

    async def _found(self, signal: Signal) -> Finding | None:
        key = (signal.account, signal.rule, signal.subject, signal.window_key)
        last = self._written.get(key)
        now = time.monotonic()
        refresh_ms = self.settings.evidence_refresh_s * 1000
        if (
            last is not None
            and signal.severity.rank <= last[0]
            and now - last[1] < self.settings.evidence_refresh_s
            and signal.at_ms - last[2] < refresh_ms
        ):
            # stored moments ago at this severity, for events moments apart: nothing new
            # (a replay hours of event time later still moves last_seen_at: deadlines use it)
            return None
        call_ids = list(signal.call_ids)
        if signal.lookup is not None:
            members = await self.redis.zrangebyscore(
                signal.lookup.key,
                signal.lookup.low,
                signal.lookup.high,
                start=0,
                num=EVIDENCE_CALLS,
            )
            call_ids = [_text(m).split("|", 1)[0] for m in members]
        # windows count calls by switch/call id; the evidence names the call ids
        call_ids = [parse_ref(c)[1] for c in call_ids]
        rec = await findings.record(self.pool, signal, call_ids[:EVIDENCE_CALLS])
        finding = await self.actions.apply(rec, findings.signal_at(signal))
        self._written[key] = (finding.severity.rank, now, signal.at_ms)
        if len(self._written) > 100_000:
            self._written.clear()  # only a write-saving cache: forgetting costs a write
        if rec.created or rec.escalated:
            log.warning(
                "abuse finding #%d %s/%s on %s: %s %s",
                finding.id,
                finding.rule,
                finding.subject,
                finding.account,
                finding.severity.value,
                dict(signal.figures),
            )
        return finding


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
