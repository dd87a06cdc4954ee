"""ARI session control: every call stays under tollgate's control for its whole life.

A call authorized with TOLLGATE_CONTROL=ari enters our Stasis app with its grant (a slice).
We originate the carrier leg, bridge both when it answers, and hold a dead-man deadline
in Asterisk (TIMEOUT(absolute) on both legs = end of the paid time), renewing it slice by
slice from the ledger. If we die, Asterisk still cuts the call at its last deadline.

On every (re)connection we reconcile: outcomes the dialplan parked in AstDB while we were
unreachable are settled, calls that vanished are finished, calls still up are adopted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from rating.failover import fail_over
from rating.ledger import Decision, Grant, Ledger, LedgerError, Outcome, Reason
from switch.ari import AriClient, AriError, Connected
from switch.attempt_times import timing
from switch.carrier_legs import DEFAULT_CODES, failover_codes, routes_arg, sip_code
from switch.outcome_log import OutcomeLog, OutcomeLogError

log = logging.getLogger("tollgate.switch.sessions")

# What a lost Redis or Asterisk connection raises; the controller outlives them all.
_TRANSIENT = (AriError, RedisError, OSError, ConnectionError)
_E164 = re.compile(r"^\+[0-9]{1,15}$")
# Q.850 causes of a carrier leg that never answered -> DIALSTATUS-like dispositions
_CAUSE_STATUS = {17: "BUSY", 18: "NOANSWER", 19: "NOANSWER", 21: "CONGESTION", 34: "CONGESTION"}


@dataclass(frozen=True)
class ControlSettings:
    slice_s: int = 300
    renew_before_s: int = 30  # renew this long before the paid time ends (at most slice/2)
    ring_timeout_s: int = 30
    trunk: str = "carrier"
    watch_interval_s: float = 1.0  # suspension checks of accounts with running calls
    heartbeat_s: float = 5.0
    # a carrier failing with one of these SIP codes: the call moves on to the grant's next
    failover: frozenset[int] = failover_codes({"TOLLGATE_FAILOVER_CODES": DEFAULT_CODES})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControlSettings:
        env = os.environ if env is None else env
        return cls(
            slice_s=int(env.get("TOLLGATE_SLICE_S", "300")),
            renew_before_s=int(env.get("TOLLGATE_RENEW_BEFORE_S", "30")),
            ring_timeout_s=int(env.get("TOLLGATE_RING_SECONDS", "30")),
            trunk=env.get("TOLLGATE_TRUNK", "carrier"),
            failover=failover_codes(env),
        )

    @property
    def lead_s(self) -> float:
        return float(min(self.renew_before_s, max(self.slice_s // 2, 1)))


@dataclass(eq=False)
class Session:
    call_id: str
    account: str
    a_chan: str
    number: str
    granted_s: int
    b_chan: str = ""
    answered_at: float | None = None  # epoch seconds
    ended: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    caller: str = ""
    routes: tuple[str, ...] = ()  # the grant's carrier endpoints in try order; () = one trunk
    position: int = 1  # 1-based: the route the carrier leg goes out through
    attempts: str = ""  # failed attempts, `endpoint:sip code:start ms:pdd ms;`
    leg_started: float = 0.0  # epoch seconds of the carrier leg's INVITE (originate)
    leg_ringing: float | None = None  # its first ringing
    # never cut for the account's status (DESIGN: emergency calls always go through). The
    # dialplan and the grant keep emergency calls out of Stasis; this holds if one came in.
    emergency: bool = False

    def endpoint(self, trunk: str) -> str:
        return self.routes[self.position - 1] if self.routes else trunk

    def leg_timing(self, until: float | None) -> str:
        """`start ms:pdd ms` of the current leg; PDD to ringing, else to `until` (answer)."""
        sign = self.leg_ringing if self.leg_ringing is not None else until
        pdd = None if sign is None else max(0, round((sign - self.leg_started) * 1000))
        return timing(round(self.leg_started * 1000), pdd)

    @property
    def bridge_id(self) -> str:
        return f"{self.call_id}-bridge"

    @property
    def deadline(self) -> float | None:
        return None if self.answered_at is None else self.answered_at + self.granted_s


class SessionController:
    def __init__(
        self,
        ari: AriClient,
        ledger: Ledger,
        settings: ControlSettings,
        *,
        on_event: Callable[[str], None] | None = None,
        on_renewal: Callable[[Grant, float], None] | None = None,
        on_settled: Callable[[Outcome], None] | None = None,
        outcomes: OutcomeLog | None = None,
        finish_backoff_max_s: float = 30.0,
    ) -> None:
        self.ari = ari
        self.ledger = ledger
        self.settings = settings
        self.on_event = on_event or (lambda kind: None)
        self.on_renewal = on_renewal or (lambda grant, seconds: None)
        # a routed call settled here first (carrier quality: attempts, PDD per trunk)
        self.on_settled = on_settled or (lambda outcome: None)
        self.outcomes = outcomes
        self.finish_backoff_max_s = finish_backoff_max_s
        self.sessions: dict[str, Session] = {}
        # Finishes the ledger could not take yet (Redis down), retried until settled.
        self.unsettled: dict[str, asyncio.Task[None]] = {}
        self._by_chan: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    # -- main loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        chores = [
            self._spawn(self._watch_accounts(), "(suspension watch)"),
            self._spawn(self._heartbeat(), "(heartbeat)"),
        ]
        try:
            async for event in self.ari.events():
                try:
                    if isinstance(event, Connected):
                        await self.reconcile()
                    else:
                        await self.dispatch(event)
                except _TRANSIENT as exc:
                    self.on_event("event_failed")
                    log.warning("ARI event handling failed: %s", exc)
        finally:
            for task in chores:
                task.cancel()
            for s in list(self.sessions.values()):
                if s.task is not None:
                    s.task.cancel()

    async def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        if kind == "StasisStart":
            await self._stasis_start(channel, [str(a) for a in event.get("args", [])])
        elif kind == "ChannelStateChange":
            s = self._by_chan.get(str(channel.get("id", "")))
            ringing = channel.get("state") == "Ringing"
            if s is not None and ringing and channel.get("id") == s.b_chan:
                s.leg_ringing = s.leg_ringing or time.time()
        elif kind in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            s = self._by_chan.get(str(channel.get("id", "")))
            if s is not None and channel.get("id") == s.b_chan and s.answered_at is None:
                # a carrier leg that never answered: its destruction says why (and may move
                # the call to the next carrier); the hangup request before it says nothing
                if kind == "ChannelDestroyed":
                    await self._leg_failed(s, event)
                return
            if s is not None:
                cause = int(event.get("cause", channel.get("cause", 16)) or 16)
                await self.end(
                    s,
                    f"{kind} on {'carrier' if channel.get('id') == s.b_chan else 'phone'} leg",
                    cause,
                )

    # -- call set-up -------------------------------------------------------------------------

    async def _stasis_start(self, channel: dict[str, Any], args: list[str]) -> None:
        chan_id = str(channel.get("id", ""))
        if args[:1] == ["b"] and len(args) >= 2:
            s = self.sessions.get(args[1])
            if s is None or s.ended:
                await self.ari.hangup(chan_id)
            else:
                await self._answered(s)
            return
        if len(args) < 3 or not _E164.match(args[1]) or not args[2].isdigit():
            log.warning("channel %s entered Stasis without a grant (%r): hanging up", chan_id, args)
            await self.ari.hangup(chan_id, "failure")
            return
        call_id, number, max_ms = args[0], args[1], int(args[2])
        s = Session(
            call_id,
            str(channel.get("accountcode", "")),
            chan_id,
            number,
            max_ms // 1000,
            b_chan=f"{call_id}-b",
            caller=str((channel.get("caller") or {}).get("number", "")),
            routes=routes_arg(args[3]) if len(args) > 3 else (),
        )
        self._register(s)
        self.on_event("session_started")
        await self.ledger.touch(s.account, call_id, control="ari", a_chan=chan_id, b_chan=s.b_chan)
        try:
            await self.ari.ring(chan_id)
        except AriError as exc:
            log.warning("call %s: could not ring the phone: %s", call_id, exc)
            await self.end(s, "originate failed", 34)
            return
        await self._dial(s)

    async def _dial(self, s: Session) -> None:
        """The carrier leg through the session's current route (or the single trunk)."""
        s.leg_started, s.leg_ringing = time.time(), None
        try:
            await self.ari.originate(
                f"PJSIP/{s.number}@{s.endpoint(self.settings.trunk)}",
                channel_id=s.b_chan,
                app_args=f"b,{s.call_id}",
                caller_id=s.caller,
                originator=s.a_chan,
                timeout_s=self.settings.ring_timeout_s,
            )
        except AriError as exc:
            log.warning("call %s: carrier leg failed: %s", s.call_id, exc)
            await self.end(s, "originate failed", 34)
            return
        s.task = self._spawn(self._ring_guard(s), s.call_id)

    async def _leg_failed(self, s: Session, event: dict[str, Any]) -> None:
        """The carrier leg ended unanswered: record the attempt; on a failover code move the
        call's place to the next carrier with room (one ledger step, only here) and dial it
        within the same call (the phone keeps ringing: it hears one call)."""
        code = sip_code(event)
        cause = int(event.get("cause", 0) or 0) or 16
        endpoint = s.endpoint(self.settings.trunk)
        s.attempts += f"{endpoint}:{code or ''}:{s.leg_timing(None)};"
        if s.task is not None:
            s.task.cancel()  # the ring guard of this leg
        if not s.routes or code not in self.settings.failover:
            await self.end(s, f"carrier {endpoint} failed ({code or cause})", cause)
            return
        try:
            move = await fail_over(self.ledger, s.account, s.call_id, s.position)
            position = move.position
        except (LedgerError, RedisError, OSError, ConnectionError) as exc:
            # the grant allowed these routes: its next one, the place stays where it was
            log.warning("call %s: failover not recorded (%s): the grant's next route", s.call_id,
                        exc)  # fmt: skip
            position = s.position + 1 if s.position < len(s.routes) else 0
        if position <= 0 or position > len(s.routes) or s.ended:
            await self.end(s, f"carrier {endpoint} failed ({code}), no carrier left", cause)
            return
        self.on_event("failover")
        self._by_chan.pop(s.b_chan, None)
        s.position, s.b_chan = position, f"{s.call_id}-b{position}"
        self._by_chan[s.b_chan] = s
        with contextlib.suppress(*_TRANSIENT):
            await self.ledger.touch(s.account, s.call_id, b_chan=s.b_chan)
            # the outcome log's line (if it settles first) names the same carrier and attempts
            await self.ari.set_var(s.a_chan, "TOLLGATE_ENDPOINT", s.endpoint(""))
            await self.ari.set_var(s.a_chan, "TOLLGATE_ATTEMPTS", s.attempts)
        log.info("call %s: %s failed (%s), trying %s", s.call_id, endpoint, code,
                 s.endpoint(""))  # fmt: skip
        await self._dial(s)

    def _spawn(self, work: Coroutine[Any, Any, None], call_id: str) -> asyncio.Task[None]:
        """A per-call task whose failure is logged and counted, never silently dropped."""
        task = asyncio.create_task(work)
        task.add_done_callback(lambda t: self._task_done(t, call_id))
        return task

    def _task_done(self, task: asyncio.Task[None], call_id: str) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.on_event("task_failed")
        log.error("call %s: control task failed: %r", call_id, task.exception())

    async def _ring_guard(self, s: Session) -> None:
        """The carrier leg's failure event could be missed: never leave a phone ringing."""
        await asyncio.sleep(self.settings.ring_timeout_s + 5)
        if s.answered_at is None and not s.ended:
            await self.end(s, "carrier did not answer", 19)

    async def _answered(self, s: Session) -> None:
        if s.task is not None:
            s.task.cancel()
        s.answered_at = time.time()
        try:
            await self.ari.answer(s.a_chan)
            await self.ari.bridge(s.bridge_id, [s.a_chan, s.b_chan])
        except AriError as exc:
            log.warning("call %s: could not connect the legs: %s", s.call_id, exc)
            await self.end(s, "bridge failed", 41)
            return
        # The dead-man limit first: whatever fails next, Asterisk cuts the call in time.
        await self._set_deadline(s)
        s.task = self._spawn(self._control(s), s.call_id)
        await self.ledger.answer(s.account, s.call_id, datetime.fromtimestamp(s.answered_at, UTC))
        self.on_event("session_answered")

    # -- while the call runs -----------------------------------------------------------------

    async def _set_deadline(self, s: Session) -> None:
        """The dead-man limit: Asterisk cuts both legs at the end of the paid time."""
        assert s.deadline is not None
        left = f"{max(s.deadline - time.time(), 0.2):.3f}"
        for chan in (s.a_chan, s.b_chan):
            await self.ari.set_var(chan, "TIMEOUT(absolute)", left)

    async def _control(self, s: Session) -> None:
        """Renew slice by slice; when credit ends, hang up at the exact second it ends."""
        with contextlib.suppress(asyncio.CancelledError):
            while not s.ended and s.deadline is not None:
                await asyncio.sleep(max(0.0, s.deadline - self.settings.lead_s - time.time()))
                if s.ended:
                    return
                grant = await self._renew(s)
                if grant.allowed and grant.max_seconds > s.granted_s:
                    s.granted_s = grant.max_seconds
                    await self._set_deadline(s)
                    continue
                if grant.reason in (
                    Reason.ACCOUNT_SUSPENDED,
                    Reason.INVOICE_OVERDUE,
                    Reason.CUSTOMER_UNVERIFIED,  # verification revoked during the call
                ):
                    await self.end(s, grant.reason.lower(), 16)
                    return
                # Out of credit (any extension, even a partial one, is ALLOW above): retry
                # until the paid time ends, a top-up may come.
                while not s.ended and time.time() < s.deadline - 0.05:
                    await asyncio.sleep(min(5.0, s.deadline - time.time()))
                    if s.deadline - time.time() > 0.5:
                        again = await self._renew(s)
                        if again.allowed and again.max_seconds > s.granted_s:
                            s.granted_s = again.max_seconds
                            await self._set_deadline(s)
                            break
                else:
                    if not s.ended:
                        await self.end(s, "credit exhausted", 16)
                    return

    async def _renew(self, s: Session) -> Grant:
        """One more slice from the ledger, measured: renewals are ARI's authorizations."""
        started = time.monotonic()
        try:
            grant = await self.ledger.renew(
                s.account, s.call_id, s.granted_s + self.settings.slice_s
            )
        except (RedisError, OSError, ConnectionError) as exc:
            # Like a refusal: retried until the paid time ends, when Asterisk cuts the call.
            log.warning("call %s: renewal failed: %s", s.call_id, exc)
            grant = Grant(Decision.DENY, Reason.SERVICE_UNAVAILABLE, 0, s.call_id)
        self.on_event("renewal")
        self.on_renewal(grant, time.monotonic() - started)
        return grant

    async def _watch_accounts(self) -> None:
        """Suspensions reach running calls within a second or so."""
        while True:
            await asyncio.sleep(self.settings.watch_interval_s)
            held = self.sessions.values()
            accounts = {s.account for s in held if not s.ended and not s.emergency}
            if not accounts:
                continue
            try:
                statuses = await self.ledger.account_statuses(sorted(accounts))
            except (RedisError, OSError, ConnectionError) as exc:
                log.warning("suspension watch: %s", exc)
                continue
            for s in list(self.sessions.values()):
                if s.emergency:
                    continue
                if statuses.get(s.account, "active") != "active" and not s.ended:
                    log.warning(
                        "account %s is %s: hanging up %s", s.account, statuses[s.account], s.call_id
                    )
                    self.on_event("hangup_suspended")
                    await self.end(s, f"account {statuses[s.account]}", 16)

    async def _heartbeat(self) -> None:
        """Last time we saw each call alive, for settling calls that end while we are down."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            now_ms = str(int(time.time() * 1000))
            for s in list(self.sessions.values()):
                if s.answered_at is not None and not s.ended:
                    with contextlib.suppress(RedisError, OSError, ConnectionError):
                        await self.ledger.touch(s.account, s.call_id, last_seen=now_ms)

    # -- the end -----------------------------------------------------------------------------

    async def end(self, s: Session, why: str, cause: int = 16) -> None:
        if s.ended:
            return
        s.ended = True
        ended_at = time.time()
        if s.task is not None and s.task is not asyncio.current_task():
            s.task.cancel()
        self._unregister(s)
        for chan in (s.a_chan, s.b_chan):
            with contextlib.suppress(AriError):
                await self.ari.hangup(chan, "normal" if s.answered_at else _reason(cause))
        with contextlib.suppress(AriError):
            await self.ari.destroy_bridge(s.bridge_id)
        await self._finish(s, ended_at, cause, why)

    async def _finish(self, s: Session, ended_at: float, cause: int, why: str) -> None:
        answered = s.answered_at is not None
        talk = ended_at - s.answered_at if s.answered_at is not None else 0.0
        outcome = Outcome(
            answered=answered,
            billsec=int(talk + 0.5),
            ended_at=datetime.fromtimestamp(ended_at, UTC),
            disposition="ANSWER" if answered else _CAUSE_STATUS.get(cause, "NOANSWER"),
            hangup_cause=str(cause),
            answered_at=datetime.fromtimestamp(s.answered_at, UTC) if s.answered_at else None,
            # as the dialplan reports a routed call: the carrier used last, failed attempts
            endpoint=s.endpoint("") if s.routes and s.leg_started else "",
            attempts=s.attempts,
            timing=s.leg_timing(s.answered_at) if s.routes and s.leg_started else "",
        )
        try:
            settled = await self.ledger.finish(s.account, s.call_id, outcome)
        except (RedisError, OSError, ConnectionError) as exc:
            log.warning("call %s: finish failed (%s), retrying until settled", s.call_id, exc)
            self.on_event("finish_deferred")
            if s.call_id not in self.unsettled:
                self.unsettled[s.call_id] = self._spawn(
                    self._retry_finish(s.account, s.call_id, outcome), s.call_id
                )
            return
        self.on_event("session_ended")
        if settled.status == "FINISHED" and outcome.endpoint:
            self.on_settled(outcome)
        log.info(
            "call %s of %s ended (%s): %.1f s, cost %d (%s)",
            s.call_id,
            s.account,
            why,
            talk,
            settled.cost,
            settled.status,
        )

    async def _retry_finish(self, account: str, call_id: str, outcome: Outcome) -> None:
        """Until the ledger takes it. Idempotent: if the dialplan's parked report of the same
        call settles first, this one is a harmless duplicate. A restart of tollgate loses
        this retry, not the outcome: the dialplan parked it in AstDB as well."""
        delay = 0.5
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self.ledger.finish(account, call_id, outcome)
                except (RedisError, OSError, ConnectionError) as exc:
                    delay = min(delay * 2, self.finish_backoff_max_s)
                    log.warning("call %s: finish still failing: %s", call_id, exc)
                    continue
                self.on_event("session_ended")
                log.info("call %s of %s: deferred finish settled", call_id, account)
                return
        finally:
            self.unsettled.pop(call_id, None)

    # -- reconciliation ---------------------------------------------------------------------

    async def reconcile(self) -> dict[str, int]:
        """After a (re)connect: settle, finish or adopt whatever happened while we were away."""
        counts = {"parked": 0, "vanished": 0, "adopted": 0}
        collected = True
        if self.outcomes is not None:
            try:
                counts["parked"] = (await self.outcomes.collect()).settled
            except OutcomeLogError as exc:
                collected = False
                log.warning("outcome log not read: %s", exc)
        alive = {str(c.get("id")): c for c in await self.ari.channels()}
        for s in list(self.sessions.values()):
            if s.a_chan not in alive:
                counts["vanished"] += 1
                await self.end(s, "ended while disconnected")
        for record in await self.ledger.open_sessions():
            call_id = record.get("call_id", "")
            if record.get("control") != "ari" or call_id in self.sessions:
                continue
            if record.get("switch", "") != self.ledger.switch_of():
                continue  # another switch's call: its own controller settles it
            a_chan = record.get("a_chan", "")
            if a_chan in alive:
                counts["adopted"] += 1
                await self._adopt(record, alive)
            elif collected:
                # Only once the outcome log was read: the real outcome may be waiting there.
                counts["vanished"] += 1
                await self._finish_vanished(record)
        log.info("reconciled after connect: %s", counts)
        self.on_event("reconciled")
        return counts

    async def _adopt(self, record: dict[str, str], alive: dict[str, Any]) -> None:
        s = Session(
            record["call_id"],
            record["account"],
            record["a_chan"],
            record.get("e164", ""),
            int(record.get("granted") or 0),
            b_chan=record.get("b_chan", ""),
            emergency=record.get("emergency") == "1",
        )
        if record.get("answered_at"):
            s.answered_at = int(record["answered_at"]) / 1000
        self._register(s)
        if s.emergency:
            return  # tracked to be settled when it ends; no paid time, so no deadline
        if s.answered_at is not None:
            await self._set_deadline(s)
            s.task = self._spawn(self._control(s), s.call_id)
        elif alive.get(s.b_chan, {}).get("state") == "Up":
            await self._answered(s)
        else:
            s.task = self._spawn(self._ring_guard(s), s.call_id)

    async def _finish_vanished(self, record: dict[str, str]) -> None:
        """No parked report and no channel: bill up to what we know the call could last."""
        answered_at = int(record.get("answered_at") or 0) / 1000 or None
        s = Session(
            record["call_id"],
            record["account"],
            record.get("a_chan", ""),
            record.get("e164", ""),
            int(record.get("granted") or 0),
            answered_at=answered_at,
            ended=True,
        )
        end = time.time()
        if s.deadline is not None:
            # Asterisk cut it at the deadline at the latest (dead-man limit).
            end = min(end, s.deadline)
        await self._finish(s, end, 16, "vanished while disconnected")

    # -- operators --------------------------------------------------------------------------

    async def hangup_account(self, account: str) -> None:
        """An account was suspended (e.g. by an abuse finding): its calls end now."""
        for s in [s for s in self.sessions.values() if s.account == account and not s.emergency]:
            self.on_event("hangup_suspended")
            await self.end(s, "account suspended", 16)

    async def hangup(self, call_id: str) -> bool:
        s = self.sessions.get(call_id)
        if s is None:
            return await self.ari.hangup(call_id)
        await self.end(s, "operator hangup", 16)
        return True

    def _register(self, s: Session) -> None:
        self.sessions[s.call_id] = s
        self._by_chan[s.a_chan] = s
        if s.b_chan:
            self._by_chan[s.b_chan] = s

    def _unregister(self, s: Session) -> None:
        self.sessions.pop(s.call_id, None)
        self._by_chan.pop(s.a_chan, None)
        self._by_chan.pop(s.b_chan, None)


def _reason(cause: int) -> str:
    return {17: "busy", 19: "no_answer", 21: "rejected", 34: "congestion"}.get(cause, "normal")
