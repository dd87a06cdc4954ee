"""One line of Asterisk's outcome log: what the hangup handler put in CDR(tollgate_outcome).

    call id|account|status|answered ms|cause|dialled|emergency|end epoch
        [|endpoint|attempts[|start ms:ringing ms:progress ms]]

The next two come from dialplans that route over carriers: the endpoint the call went out
through last and every failed attempt as `endpoint:sip code;` (empty for the single trunk),
since attempt times `endpoint:code:start ms:ringing ms:progress ms;` (or, set by the
session controller, `endpoint:code:start ms:pdd ms;`); the last field is the same three of
the last attempt (switch.attempt_times turns them into start times and PDD).

cdr_custom appends one line per CDR (configs/asterisk/cdr_custom.conf); CDRs of legs that
ran no tollgate hangup handler give empty lines, which carry nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from rating.ledger import CALL_ID, Outcome
from switch.attempt_times import failed_attempts, last_attempt

FIELDS = 8
ROUTED_FIELDS = 10
TIMED_FIELDS = 11
_ENDPOINT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$")
_ATTEMPTS = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}:[0-9]{0,3}((:[0-9]{0,13}){2,3})?;){0,16}$"
)
_TIMES = re.compile(r"^([0-9]{0,13}(:[0-9]{0,13}){2})?$")
_DIALLED = re.compile(r"^\+?[0-9]{1,20}$")
_EPOCH = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")
_MS = re.compile(r"^[0-9]{1,12}$")


class OutcomeLineError(ValueError):
    """A line no ledger can accept; `code` is stable, `why` names the field."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(f"{code}: {why}")
        self.code = code
        self.why = why


@dataclass(frozen=True, slots=True)
class Report:
    call_id: str
    account: str
    outcome: Outcome


def parse_line(line: str) -> Report:
    """Raises OutcomeLineError naming the field that is wrong."""
    parts = line.split("|")
    if len(parts) not in (FIELDS, ROUTED_FIELDS, TIMED_FIELDS):
        raise OutcomeLineError(
            "MALFORMED_OUTCOME",
            f"{len(parts)} fields, expected {FIELDS}, {ROUTED_FIELDS} or {TIMED_FIELDS}",
        )
    endpoint, attempts, times = ([*parts[FIELDS:], "", "", ""])[:3]
    if not _ENDPOINT.match(endpoint):
        raise OutcomeLineError("BAD_ENDPOINT", f"endpoint {endpoint[:64]!r} is not a name")
    if not _ATTEMPTS.match(attempts):
        raise OutcomeLineError("BAD_ATTEMPTS", f"attempts {attempts[:64]!r} are not endpoint:code;")
    if not _TIMES.match(times):
        raise OutcomeLineError("BAD_TIMES", f"times {times[:64]!r} are not ms:ms:ms")
    call_id, account, status, ms, cause, dialled, _emergency, ended = parts[:FIELDS]
    if not CALL_ID.match(call_id):
        raise OutcomeLineError("BAD_CALL_ID", f"call id {call_id[:64]!r} is not acceptable")
    if not _EPOCH.match(ended):
        raise OutcomeLineError("BAD_END", f"end {ended[:32]!r} is not an epoch")
    if ms and not _MS.match(ms):
        raise OutcomeLineError("BAD_ANSWERED_MS", f"answered ms {ms[:32]!r} is not a number")
    done = outcome(status, ms, cause, dialled, float(ended))
    last = ""
    if endpoint and times:
        talk = int(ms) if ms and done.answered else None
        last = last_attempt(times, round(float(ended) * 1000), talk)
    routed = replace(done, endpoint=endpoint, attempts=failed_attempts(attempts), timing=last)
    return Report(call_id, account, routed)


def outcome(status: str, ms: str, cause: str, dialled: str, ended_at: float) -> Outcome:
    """The Outcome the FastAGI finish and AstDB parking also build (same rounding)."""
    answered = status == "ANSWER"
    talk_ms = int(ms) if ms.isdigit() else 0
    return Outcome(
        answered=answered,
        billsec=(talk_ms + 500) // 1000 if answered else 0,
        ended_at=datetime.fromtimestamp(ended_at, UTC),
        disposition=status or "NOANSWER",
        hangup_cause=cause if cause.isdigit() else "",
        answered_at=datetime.fromtimestamp(ended_at - talk_ms / 1000, UTC) if answered else None,
        dialled=dialled if _DIALLED.match(dialled) else "",
    )
