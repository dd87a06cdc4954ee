"""Findings in PostgreSQL, and what operators do with them.

A finding is one (account, rule, subject, window): a rule firing again in the same window
adds a hit, refreshes the evidence and may raise the severity. Status: open ->
acknowledged (someone is on it) -> lifted (a false alarm, or dealt with: the account is
resumed if this finding suspended it and no other finding holds it) or closed (done; a
suspension stays). A lifted or closed finding never acts again in its window."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg

from abuse.settings import Action
from abuse.signals import Severity, Signal
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import AccountStatus


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    LIFTED = "lifted"
    CLOSED = "closed"


ACTIVE = (Status.OPEN, Status.ACKNOWLEDGED)
HOLDING = (Status.OPEN, Status.ACKNOWLEDGED, Status.CLOSED)  # keep a suspension in force


class FindingNotFound(LookupError):
    def __init__(self, finding_id: int) -> None:
        super().__init__(f"no abuse finding #{finding_id}")
        self.finding_id = finding_id


class FindingStateError(ValueError):
    """A status change that does not apply to the finding's current status."""

    def __init__(self, finding_id: int, status: str, change: str) -> None:
        super().__init__(f"abuse finding #{finding_id} is {status}: cannot {change} it")
        self.finding_id = finding_id
        self.status = status
        self.change = change


@dataclass(frozen=True, slots=True)
class Finding:
    id: int
    account: str
    rule: str
    subject: str
    window_key: str
    severity: Severity
    status: Status
    action: Action
    suspended: bool
    evidence: dict[str, Any]
    hits: int
    created_at: datetime
    updated_at: datetime
    status_by: str | None = None
    status_reason: str | None = None
    status_at: datetime | None = None
    last_seen_at: datetime | None = None
    warned_at: datetime | None = None
    deadline_at: datetime | None = None
    warning_id: int | None = None  # the warned finding this one continues
    closure: str | None = None  # proposed | accepted | rejected
    closure_at: datetime | None = None
    false_alarm: bool = False  # lifted as a false alarm: no episode for the repeat rule

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "rule": self.rule,
            "subject": self.subject,
            "window": self.window_key,
            "severity": self.severity.value,
            "status": self.status.value,
            "action": self.action.value,
            "suspended": self.suspended,
            "hits": self.hits,
            "evidence": self.evidence,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "status_by": self.status_by,
            "status_reason": self.status_reason,
            "status_at": _iso(self.status_at),
            "last_seen_at": _iso(self.last_seen_at),
            "warned_at": _iso(self.warned_at),
            "deadline_at": _iso(self.deadline_at),
            "warning_id": self.warning_id,
            "closure": self.closure,
            "closure_at": _iso(self.closure_at),
            "false_alarm": self.false_alarm,
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@dataclass(frozen=True, slots=True)
class Recorded:
    finding: Finding
    created: bool
    escalated: bool


def from_row(row: asyncpg.Record) -> Finding:
    evidence = row["evidence"]
    return Finding(
        id=row["id"],
        account=row["account"],
        rule=row["rule"],
        subject=row["subject"],
        window_key=row["window_key"],
        severity=Severity(row["severity"]),
        status=Status(row["status"]),
        action=Action(row["action"]),
        suspended=row["suspended"],
        evidence=json.loads(evidence) if isinstance(evidence, str) else evidence,
        hits=row["hits"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status_by=row["status_by"],
        status_reason=row["status_reason"],
        status_at=row["status_at"],
        last_seen_at=row["last_seen_at"],
        warned_at=row["warned_at"],
        deadline_at=row["deadline_at"],
        warning_id=row["warning_id"],
        closure=row["closure"],
        closure_at=row["closure_at"],
        false_alarm=row["false_alarm"],
    )


def evidence(signal: Signal, call_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "call_ids": list(call_ids),
        "figures": dict(signal.figures),
        "threshold": dict(signal.threshold),
        "window_s": signal.window_s,
        "at_ms": signal.at_ms,
        **({"detail": dict(signal.detail)} if signal.detail else {}),
    }


def signal_at(signal: Signal) -> datetime:
    """The instant of the event that fired the signal (the CDR's, not the detector's clock)."""
    return datetime.fromtimestamp(signal.at_ms / 1000, UTC)


async def record(pool: asyncpg.Pool, signal: Signal, call_ids: Sequence[str]) -> Recorded:
    """Store a signal as a new finding or as a hit on its window's finding."""
    data = json.dumps(evidence(signal, call_ids))
    at = signal_at(signal)
    key = (signal.account, signal.rule, signal.subject, signal.window_key)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "insert into abuse_findings"
            " (account, rule, subject, window_key, severity, evidence, last_seen_at)"
            " values ($1, $2, $3, $4, $5, $6, $7)"
            " on conflict (account, rule, subject, window_key) do nothing returning *",
            *key,
            signal.severity.value,
            data,
            at,
        )
        if row is not None:
            created = from_row(row)
            await add_event(
                conn, created.id, "created", detail={"severity": created.severity}, at=at
            )
            return Recorded(created, True, False)
        row = await conn.fetchrow(
            "select * from abuse_findings where account = $1 and rule = $2 and subject = $3"
            " and window_key = $4 for update",
            *key,
        )
        assert row is not None  # the insert conflicted with it and findings are never deleted
        current = from_row(row)
        escalated = current.active and signal.severity.rank > current.severity.rank
        row = await conn.fetchrow(
            "update abuse_findings set hits = hits + 1, updated_at = now(),"
            " evidence = case when $2 then $3::jsonb else evidence end, severity = $4,"
            " last_seen_at = greatest(last_seen_at, $5) where id = $1 returning *",
            current.id,
            current.active,
            data,
            (signal.severity if escalated else current.severity).value,
            at,
        )
        assert row is not None
        if escalated:
            await add_event(
                conn,
                current.id,
                "escalated",
                detail={"from": current.severity, "to": signal.severity},
                at=at,
            )
        return Recorded(from_row(row), False, escalated)


async def set_action(
    pool: asyncpg.Pool,
    finding_id: int,
    action: Action,
    suspended: bool,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Remember the strongest action carried out (so a restart does not repeat it)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "update abuse_findings set action = $2, suspended = suspended or $3,"
            " updated_at = now() where id = $1",
            finding_id,
            action.value,
            suspended,
        )
        await add_event(
            conn, finding_id, action.value, detail={"suspended": suspended, **(detail or {})}, at=at
        )


async def holds_suspension(conn: Conn, account: str, other_than: int) -> bool:
    """Whether another finding keeps the account suspended."""
    found = await conn.fetchval(
        "select exists (select 1 from abuse_findings where account = $1 and id <> $2"
        " and suspended and status = any($3::text[]))",
        account,
        other_than,
        [s.value for s in HOLDING],
    )
    return bool(found)


# -- the timeline ----------------------------------------------------------------------------------

# what the customer sees of a finding's history, and under which name
CUSTOMER_EVENTS = {
    "created": "detected",
    "warn": "warned",
    "continued": "continued",
    "suspend": "suspended",
    "lifted": "lifted",
    "resumed": "resumed",
    "closed": "closed",
    "closure_accepted": "account_closed",
}


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    at: datetime
    who: str
    why: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "at": self.at.isoformat(),
            "who": self.who,
            "why": self.why,
            "detail": self.detail,
        }

    def for_customer(self) -> dict[str, Any]:
        """No operator names, notes or evidence: the step, when, and a warning's deadline."""
        out: dict[str, Any] = {"event": CUSTOMER_EVENTS[self.event], "at": self.at.isoformat()}
        if self.event == "warn" and self.detail.get("deadline"):
            out["deadline"] = self.detail["deadline"]
        return out


async def timeline(conn: Conn, finding_id: int) -> list[Event]:
    """The finding's history in order (created, warned with its deadline, continued,
    suspended, lifted, closed, closure proposed and decided)."""
    rows = await conn.fetch(
        "select event, at, who, why, detail from abuse_finding_events where finding_id = $1"
        " order by at, id",
        finding_id,
    )
    return [
        Event(
            r["event"],
            r["at"],
            r["who"],
            r["why"],
            json.loads(r["detail"]) if isinstance(r["detail"], str) else dict(r["detail"]),
        )
        for r in rows
    ]


def customer_view(f: Finding, events: Sequence[Event]) -> dict[str, Any]:
    """A finding as its own account's customer sees it."""
    return {
        "id": f.id,
        "rule": f.rule,
        "severity": f.severity.value,
        "status": f.status.value,
        "suspended": f.suspended,
        "warned_at": _iso(f.warned_at),
        "deadline_at": _iso(f.deadline_at),
        "created_at": f.created_at.isoformat(),
        "timeline": [e.for_customer() for e in events if e.event in CUSTOMER_EVENTS],
    }


# -- operators ---------------------------------------------------------------------------------


async def get(pool: asyncpg.Pool, finding_id: int) -> Finding:
    row = await pool.fetchrow("select * from abuse_findings where id = $1", finding_id)
    if row is None:
        raise FindingNotFound(finding_id)
    return from_row(row)


async def list_findings(
    pool: asyncpg.Pool,
    *,
    account: str | None = None,
    status: Status | None = None,
    rule: str | None = None,
    limit: int = 100,
    closure: str | None = None,
) -> list[Finding]:
    rows = await pool.fetch(
        "select * from abuse_findings where ($1::text is null or account = $1)"
        " and ($2::text is null or status = $2) and ($3::text is null or rule = $3)"
        " and ($5::text is null or closure = $5)"
        " order by created_at desc, id desc limit $4",
        account,
        status.value if status else None,
        rule,
        limit,
        closure,
    )
    return [from_row(r) for r in rows]


async def acknowledge(pool: asyncpg.Pool, finding_id: int, who: str, why: str = "") -> Finding:
    _, after = await _change(pool, finding_id, Status.ACKNOWLEDGED, (Status.OPEN,), who, why)
    return after


async def close(pool: asyncpg.Pool, finding_id: int, who: str, why: str = "") -> Finding:
    _, after = await _change(pool, finding_id, Status.CLOSED, (*ACTIVE, Status.LIFTED), who, why)
    return after


async def lift(
    pool: asyncpg.Pool,
    accounts: AccountStore,
    finding_id: int,
    who: str,
    why: str = "",
    false_alarm: bool = False,
) -> tuple[Finding, bool]:
    """Lift a finding; resume its account if it held it suspended and no other finding does.
    `false_alarm`: the behaviour was not abuse, so the finding is no earlier episode for the
    repeat rule (abuse/warnings.py). Returns the finding and whether the account was
    resumed."""
    before, finding = await _change(
        pool, finding_id, Status.LIFTED, ACTIVE, who, why, false_alarm=false_alarm
    )
    if not before.suspended:
        return finding, False
    async with pool.acquire() as conn:
        if await holds_suspension(conn, finding.account, finding.id):
            return finding, False
    account = await accounts.get(finding.account)
    if account.status is not AccountStatus.SUSPENDED:
        return finding, False
    await accounts.set_status(
        finding.account,
        AccountStatus.ACTIVE,
        f"abuse finding #{finding.id} lifted by {who}" + (f": {why}" if why else ""),
    )
    async with pool.acquire() as conn:
        # the customer is told (notify/abuse.py reads these lines)
        await add_event(conn, finding.id, "resumed", who, why)
    return finding, True


async def _change(
    pool: asyncpg.Pool,
    finding_id: int,
    to: Status,
    allowed_from: Sequence[Status],
    who: str,
    why: str,
    false_alarm: bool = False,
) -> tuple[Finding, Finding]:
    """The finding before and after the change."""
    verb = {"acknowledged": "acknowledge", "lifted": "lift", "closed": "close"}[to.value]
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select * from abuse_findings where id = $1 for update", finding_id
        )
        if row is None:
            raise FindingNotFound(finding_id)
        current = from_row(row)
        if current.status not in allowed_from:
            raise FindingStateError(finding_id, current.status.value, verb)
        row = await conn.fetchrow(
            "update abuse_findings set status = $2, status_by = $3, status_reason = $4,"
            " status_at = now(), updated_at = now(),"
            " suspended = case when $2 = 'lifted' then false else suspended end,"
            " false_alarm = $5"
            " where id = $1 returning *",
            finding_id,
            to.value,
            who,
            why,
            false_alarm,
        )
        assert row is not None
        detail: dict[str, Any] = {"suspended": current.suspended}
        if false_alarm:
            detail["false_alarm"] = True
        await add_event(conn, finding_id, to.value, who, why, detail)
        return current, from_row(row)


async def add_event(
    conn: Conn,
    finding_id: int,
    event: str,
    who: str = "",
    why: str = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """One line of the finding's timeline; `at` the instant it happened (default: now)."""
    await conn.execute(
        "insert into abuse_finding_events (finding_id, event, who, why, detail, at)"
        " values ($1, $2, $3, $4, $5, coalesce($6, now()))",
        finding_id,
        event,
        who,
        why,
        json.dumps(detail or {}, default=str),
        at,
    )
