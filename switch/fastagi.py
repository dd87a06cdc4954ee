"""The FastAGI adapter: turns Asterisk's AGI requests into ledger calls, and grants into
channel variables. It never rates; it translates.

Dialplan contract (configs/asterisk/extensions.conf):
  authorize  -> sets one variable, TOLLGATE_GRANT = DECISION,REASON,SIP_CODE,MAX_MS,DIAL,
                CALL_ID,CONTROL,CLI, which the dialplan splits with ARRAY() (one AGI round trip
                per call: each SET VARIABLE is one; the dialplan's default grant is DENY/503)
  authorize  -> args: when the dialplan asked (epoch.ms), its budget (s); a request that
                arrives with its budget spent is refused without touching the ledger
  with ARI session control, grants are slices and CONTROL=ari sends calls to Stasis
  outcomes   -> the hangup handler puts every outcome into CDR(tollgate_outcome); cdr_custom
                appends it to the outcome log (switch.outcome_log tails it); no second AGI
                session per call
  failover   -> only when a carrier failed with a failover code: switch.agi_failover
  finish     -> (older dialplans) args: call id, DIALSTATUS, answered ms, HANGUPCAUSE, dialled
                number, emergency, hangup time (epoch.ms); sets TOLLGATE_FINISHED=1 once settled
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rating.keys import DID_GONE
from rating.ledger import (
    CALL_ID,
    CallRequest,
    Decision,
    Grant,
    Ledger,
    LedgerError,
    Outcome,
    Reason,
)
from rating.numbers import InvalidNumber, normalise
from switch.agi import AgiChannel, AgiHangup, AgiProtocolError, AgiRequest, Handler
from switch.agi_failover import failover_handler

log = logging.getLogger("tollgate.switch.fastagi")

# SIP response the dialplan rejects a refused call with (PJSIPHangup).
SIP_CODES: dict[str, int] = {
    Reason.INSUFFICIENT_CREDIT: 402,
    Reason.INVOICE_OVERDUE: 402,
    Reason.PREMIUM_BLOCKED: 403,
    Reason.DESTINATION_BLOCKED: 403,
    Reason.ACCOUNT_SUSPENDED: 403,
    Reason.CUSTOMER_UNVERIFIED: 403,
    Reason.UNKNOWN_ACCOUNT: 403,
    Reason.INVALID_NUMBER: 484,
    Reason.NO_RATE: 404,
    Reason.TOO_MANY_CALLS: 486,
    Reason.RATE_LIMITED: 503,
    Reason.SERVICE_UNAVAILABLE: 503,
    # A malformed request from our own switch (a call id no ledger key may carry): a fault
    # on the operator's side that retrying will not mend, so not 503; not the caller's
    # fault either, so not a 4xx that says the INVITE was wrong.
    Reason.INVALID_REQUEST: 500,
    "AUTHORIZE_TIMEOUT": 503,
    # A refusal that retrying will not change (the prices decide): 403, not 503 (which
    # invites the caller's switch to retry the same call here).
    Reason.NO_PROFITABLE_ROUTE: 403,
    Reason.NO_ROUTE: 404,  # as NO_RATE: nobody terminates the number
    Reason.CARRIERS_BUSY: 503,  # every carrier at its max calls: try again shortly
}
_DIGITS = re.compile(r"^\+?[0-9]{1,20}$")
# The fields of TOLLGATE_GRANT, in the order the dialplan's ARRAY() assigns them.
GRANT_FIELDS = ("DECISION", "REASON", "SIP_CODE", "MAX_MS", "DIAL", "CALL_ID", "CONTROL", "CLI")
# An inbound call's grant has one more: the endpoints to ring.
INCOMING_GRANT_FIELDS = (*GRANT_FIELDS, "RING")
# An outbound call routed over carriers has one more: their endpoints, '|'-joined, in the
# order the dialplan tries them (absent without carriers: the single trunk's grant as before).
ROUTED_GRANT_FIELDS = (*GRANT_FIELDS, "ROUTES")
_INT = re.compile(r"^[0-9]{1,9}$")
_EPOCH = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")
_BUDGET = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3})?$")
# Refuse a request with less budget than this left: the answer would arrive too late.
ANSWER_MARGIN_S = 0.1
AUTHORIZE_TIMEOUT = "AUTHORIZE_TIMEOUT"  # the dialplan's reason for the same refusal


def budget_left(args: tuple[str, ...], now: float) -> float | None:
    """Seconds the dialplan still waits for this authorize; None if it did not say.

    The dialplan passes when it asked (epoch with ms) and its budget in seconds as the
    first two arguments. A clock ahead of ours counts as "just asked"."""
    if len(args) < 2 or not _EPOCH.match(args[0]) or not _BUDGET.match(args[1]):
        return None
    asked = min(float(args[0]), now)
    return asked + float(args[1]) - now


# SIP response to the carrier when an inbound call is refused: the number's account cannot
# take calls now (suspended, out of credit, busy: its lines or its inbound limit), is gone
# (closed), or there is no such number. Too many new inbound calls a second (RATE_LIMITED,
# the account's inbound_cps) gets 503: the carrier may try again later.
UNKNOWN_NUMBER = "UNKNOWN_NUMBER"
NUMBER_GONE = "NUMBER_GONE"  # released (a closed account's, say), resting in quarantine
INBOUND_SIP_CODES: dict[str, int] = {
    UNKNOWN_NUMBER: 404,
    NUMBER_GONE: 410,
    Reason.UNKNOWN_ACCOUNT: 404,
    Reason.NO_RATE: 404,
    Reason.ACCOUNT_SUSPENDED: 480,
    Reason.INSUFFICIENT_CREDIT: 480,
    Reason.TOO_MANY_CALLS: 486,
    Reason.RATE_LIMITED: 503,
}
_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_LOGIN = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")


def ring_targets(grant: Grant, account: str) -> str:
    """The PJSIP endpoints an allowed inbound call rings, '&'-joined: the account's active SIP
    logins; an account without any rings the endpoint named as the account (a phone of the
    static configuration)."""
    logins = [x for x in grant.ring if _LOGIN.match(x)]
    return "&".join(logins) if logins else account


def incoming_grant_value(grant: Grant, account: str) -> str:
    """TOLLGATE_GRANT of an inbound call: DIAL is the account (the channel's accountcode),
    RING the endpoints to ring (`ring_targets`); a closed account's number answers 410 Gone.
    Nine fields: the outbound grant's eight, then RING."""
    allowed = grant.allowed and bool(_ENDPOINT.match(account))
    code = INBOUND_SIP_CODES.get(grant.reason, 503)
    if grant.reason == Reason.ACCOUNT_SUSPENDED and grant.detail == "closed":
        code = 410
    fields = (
        "ALLOW" if allowed else "DENY",
        grant.reason if grant.allowed == allowed else Reason.INVALID_REQUEST,
        str(code),
        str(grant.max_seconds * 1000) if allowed else "0",
        account if _ENDPOINT.match(account) else "",
        grant.call_id,
        "",
        "",
        ring_targets(grant, account) if allowed else "",
    )
    if any("," in f for f in fields):
        return f"DENY,{Reason.INVALID_REQUEST},500,0,,,,,"
    return ",".join(fields)


def parse_grant(value: str, names: tuple[str, ...] = GRANT_FIELDS) -> dict[str, str]:
    """TOLLGATE_GRANT as the dialplan splits it: {"TOLLGATE_DECISION": ..., ...}."""
    parts = value.split(",") + [""] * len(names)
    return {f"TOLLGATE_{name}": part for name, part in zip(names, parts, strict=False)}


def _end_epoch(value: str, default: datetime) -> datetime:
    """The dialplan's hangup time (epoch with ms): right even when this report comes late."""
    if not _EPOCH.match(value):
        return default
    return min(datetime.fromtimestamp(float(value), UTC), default)


@dataclass(frozen=True, slots=True)
class Decided:
    """What the adapter told the switch; for metrics and logs."""

    script: str
    account: str
    call_id: str
    decision: str
    reason: str
    seconds: float


def _shown(text: str, limit: int = 64) -> str:
    """A value from the switch as logs show it: bounded."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def _rdnis(value: str) -> str:
    """Asterisk says "unknown" when a call was not forwarded."""
    return "" if value.lower() in ("", "unknown") else value


class FastAgiAdapter:
    def __init__(
        self,
        ledger: Ledger,
        *,
        slice_s: int | None = None,
        on_decided: Callable[[Decided], None] | None = None,
    ) -> None:
        """`slice_s`: ARI session control is on; grant slices and hand calls to Stasis."""
        self.ledger = ledger
        self.slice_s = slice_s
        self.on_decided = on_decided

    def handlers(self) -> dict[str, Handler]:
        return {
            "authorize": self.authorize,
            "finish": self.finish,
            "inbound": self.inbound,
            "incoming": self.incoming,
            "failover": failover_handler(self.ledger),
        }

    async def authorize(self, req: AgiRequest, chan: AgiChannel) -> None:
        started = datetime.now(UTC)
        account = req.env.get("accountcode", "")
        call_id = req.env.get("uniqueid", "")
        dialled = req.env.get("extension", "")
        left = budget_left(req.args, time.time())
        if left is not None and left < ANSWER_MARGIN_S:
            # The dialplan has refused this call already (or will before our answer lands):
            # reserving for it would hold credit for a call that never exists.
            shown = call_id if CALL_ID.match(call_id) else ""
            log.warning("authorize %s for %r came %.3f s past its budget", shown, account, -left)
            grant = Grant(Decision.DENY, AUTHORIZE_TIMEOUT, 0, shown)
            self._report("authorize", account, call_id, grant, started)
            with contextlib.suppress(AgiHangup, AgiProtocolError):
                await self._tell(chan, grant)
            return
        grant = await self._decide(req, account, call_id, dialled)
        if grant.reason == Reason.INVALID_REQUEST:
            call_id = _shown(call_id)  # never echoed back, and logged shortened
        try:
            await self._tell(chan, grant)
        except (AgiHangup, asyncio.CancelledError):
            # The caller gave up, or the budget ran out, while we answered: nothing will be
            # dialled, free the credit (shielded: a cancelled handler must still do this).
            if grant.allowed:
                await asyncio.shield(
                    self.ledger.finish(
                        account,
                        call_id,
                        Outcome(False, 0, datetime.now(UTC), "CANCEL", "16", dialled=dialled),
                    )
                )
            raise
        finally:
            self._report("authorize", account, call_id, grant, started)

    async def _decide(self, req: AgiRequest, account: str, call_id: str, dialled: str) -> Grant:
        if not CALL_ID.match(call_id):
            # No ledger key may carry it; refused before Redis, and not as an outage.
            log.warning("authorize for %r refused: invalid call id %r", account, _shown(call_id))
            return Grant(Decision.DENY, Reason.INVALID_REQUEST, 0, "")
        try:
            return await self.ledger.authorize(
                CallRequest(
                    account,
                    call_id,
                    dialled,
                    req.env.get("callerid", ""),
                    cap_s=self.slice_s,
                    rdnis=_rdnis(req.env.get("rdnis", "")),
                )
            )
        except LedgerError as exc:
            log.warning("authorize %s for %r refused: %s", call_id, account, exc)
            bad = exc.code.startswith("BAD")
            reason = Reason.INVALID_REQUEST if bad else Reason.SERVICE_UNAVAILABLE
            return Grant(Decision.DENY, reason, 0, "" if bad else call_id)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.error("ledger unreachable, refusing %s: %s", call_id, exc)
            return Grant(Decision.DENY, Reason.SERVICE_UNAVAILABLE, 0, call_id)

    async def _tell(self, chan: AgiChannel, grant: Grant) -> None:
        await chan.set_variable("TOLLGATE_GRANT", self.grant_value(grant), last=True)

    def grant_value(self, grant: Grant) -> str:
        """TOLLGATE_GRANT: the whole answer in one variable (one AGI round trip)."""
        number = grant.number.e164 if grant.number is not None else ""
        allowed = grant.allowed and bool(_DIGITS.match(number))
        control = "ari" if allowed and self.slice_s and grant.reason == Reason.OK else ""
        fields: tuple[str, ...] = (
            # ALLOW only with a number and a limit in place
            grant.decision.value if (allowed or not grant.allowed) else "DENY",
            grant.reason,
            str(SIP_CODES.get(grant.reason, 403)),
            str(grant.max_seconds * 1000) if allowed else "0",
            number if allowed else "",
            grant.call_id,
            control,
            # the number the call presents: one the account owns, else none (withheld)
            grant.caller_id if allowed and _DIGITS.match(grant.caller_id) else "",
        )
        if allowed and grant.routes:
            fields = (*fields, "|".join(grant.routes))
        # ARRAY() splits on commas: none of these may hold one (call ids cannot, CALL_ID)
        if any("," in f for f in fields):
            return f"DENY,{Reason.INVALID_REQUEST},500,0,,,,"
        return ",".join(fields)

    async def finish(self, req: AgiRequest, chan: AgiChannel) -> None:
        started = datetime.now(UTC)
        args = list(req.args) + [""] * 6
        call_id = args[0] or req.env.get("uniqueid", "")
        account = req.env.get("accountcode", "")
        if not CALL_ID.match(call_id):
            # authorize never accepts such an id, so nothing was reserved or can be settled;
            # marked finished so the dialplan does not park an outcome no one can collect
            log.warning("finish for %r ignored: invalid call id %r", account, _shown(call_id))
            with contextlib.suppress(AgiHangup, AgiProtocolError):
                await chan.set_variable("TOLLGATE_FINISHED", "1")
            return
        status = args[1].upper()
        answered_ms = int(args[2]) if _INT.match(args[2]) else 0
        answered = status == "ANSWER"
        billsec = (answered_ms + 500) // 1000 if answered else 0
        now = _end_epoch(args[6], datetime.now(UTC))
        outcome = Outcome(
            answered=answered,
            billsec=billsec,
            ended_at=now,
            disposition=status or "NOANSWER",
            hangup_cause=args[3] if _INT.match(args[3]) else "",
            answered_at=now - timedelta(milliseconds=answered_ms) if answered else None,
            dialled=args[4] if _DIGITS.match(args[4]) else "",
        )
        settlement = await self.ledger.finish(account, call_id, outcome)
        # Tells the dialplan not to park this outcome for later (the channel is dead by now,
        # SET VARIABLE still works there); if it does not arrive, a later replay is harmless.
        with contextlib.suppress(AgiHangup, AgiProtocolError):
            await chan.set_variable("TOLLGATE_FINISHED", "1")
        log.info(
            "finish %s %s billsec=%d cost=%d (%s)",
            account,
            call_id,
            billsec,
            settlement.cost,
            settlement.status,
        )
        if self.on_decided is not None:
            self.on_decided(
                Decided(
                    "finish",
                    account,
                    call_id,
                    settlement.status,
                    status,
                    (datetime.now(UTC) - started).total_seconds(),
                )
            )

    async def incoming(self, req: AgiRequest, chan: AgiChannel) -> None:
        """A carrier's call to a number: route it to the number's account and authorize it
        there (args: asked at, budget, the account AstDB maps the number to, if any). The
        grant's DIAL is the account (its SIP endpoint); refusals get an inbound SIP code."""
        started = datetime.now(UTC)
        call_id = req.env.get("uniqueid", "")
        did = req.env.get("extension", "")
        args = list(req.args) + [""] * 3
        left = budget_left(req.args, time.time())
        account = ""
        if left is not None and left < ANSWER_MARGIN_S:
            grant = Grant(Decision.DENY, AUTHORIZE_TIMEOUT, 0, "")
        elif not CALL_ID.match(call_id):
            grant = Grant(Decision.DENY, Reason.INVALID_REQUEST, 0, "")
        else:
            account = await self._route(did) or args[2]
            if not account:
                grant = Grant(Decision.DENY, UNKNOWN_NUMBER, 0, call_id)
            elif account == DID_GONE:
                account, grant = "", Grant(Decision.DENY, NUMBER_GONE, 0, call_id)
            else:
                grant = await self._decide_incoming(req, account, call_id, did)
        self._report("incoming", account, call_id, grant, started)
        with contextlib.suppress(AgiHangup, AgiProtocolError):
            await chan.set_variable(
                "TOLLGATE_GRANT", incoming_grant_value(grant, account), last=True
            )

    async def _route(self, did: str) -> str:
        if not _DIGITS.match(did):
            return ""
        try:
            e164 = normalise(did, self.ledger.settings.default_country).e164
        except InvalidNumber:
            return ""
        found = await self.ledger.redis.get(self.ledger.keys.did(e164))
        return found.decode() if isinstance(found, bytes) else (found or "")

    async def _decide_incoming(
        self, req: AgiRequest, account: str, call_id: str, did: str
    ) -> Grant:
        request = CallRequest(account, call_id, did, req.env.get("callerid", ""), inbound=True)
        try:
            return await self.ledger.authorize(request)
        except LedgerError as exc:
            log.warning("incoming %s for %r refused: %s", call_id, account, exc)
            return Grant(Decision.DENY, Reason.SERVICE_UNAVAILABLE, 0, call_id)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.error("ledger unreachable, refusing incoming %s: %s", call_id, exc)
            return Grant(Decision.DENY, Reason.SERVICE_UNAVAILABLE, 0, call_id)

    async def inbound(self, req: AgiRequest, chan: AgiChannel) -> None:
        """An inbound call to a customer's number ended: args account, caller, seconds.
        Appended to the inbound stream that Wangiri detection reads (calls that ring once
        from a foreign range, then the customer's callbacks)."""
        args = list(req.args) + [""] * 3
        account, caller, seconds = args[0], args[1], args[2]
        if not account or not _DIGITS.match(caller) or not _INT.match(seconds):
            log.warning("inbound report ignored: %r", args[:3])
            return
        country = await self.ledger.account_country(account)
        try:
            e164 = normalise(caller, country).e164
        except InvalidNumber:
            e164 = caller
        await self.ledger.redis.xadd(
            self.ledger.keys.inbound_stream(),
            {
                "account": account,
                "caller": e164,
                "duration": seconds,
                "ts": str(int(datetime.now(UTC).timestamp() * 1000)),
            },
        )

    def _report(
        self, script: str, account: str, call_id: str, grant: Grant, started: datetime
    ) -> None:
        log.info(
            "%s %s %s -> %s %s max=%ds",
            script,
            account,
            call_id,
            grant.decision.value,
            grant.reason,
            grant.max_seconds,
        )
        if self.on_decided is not None:
            self.on_decided(
                Decided(
                    script,
                    account,
                    call_id,
                    grant.decision.value,
                    grant.reason,
                    (datetime.now(UTC) - started).total_seconds(),
                )
            )
