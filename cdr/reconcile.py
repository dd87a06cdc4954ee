"""Reconciliation of tollgate's CDRs with Asterisk's own (cdr_custom CSV).

Asterisk's record is independent of tollgate's ledger; comparing the two for a period finds
calls one side lost, and calls the sides disagree on. A call is keyed by tollgate's call id,
which the dialplan writes to Asterisk's `userfield` (it is the channel's `uniqueid`, which is
also tried). A call id is unique on one switch only, and the CSV is one switch's: give that
switch (`--switch`) when several share the database; among tollgate's CDRs with the same
call id (different accounts) the one of Asterisk's accountcode is matched. Reported
differences:

- missing_in_tollgate: Asterisk has a call that went through tollgate's authorize (it has a
  call id) or was answered, and tollgate has no CDR: possibly unbilled;
- missing_in_asterisk: tollgate has a CDR Asterisk does not know;
- disposition_mismatch: one side says answered, the other not;
- billsec_mismatch: both answered, talk time differs by more than 1 s;
- account_mismatch: Asterisk's accountcode is not the account tollgate charged;
- unsettled: tollgate's CDR is 'expired' (the sweeper released it: no finish came).

Not differences: refused calls (Asterisk FAILED / NO ANSWER, tollgate 'denied') and
emergency calls are on both sides and match. Calls that never reached rating (no call id,
not answered: e.g. a malformed number refused with 404 before the authorize AGI) are
Asterisk-only by design and listed apart as `not_rated`, not as losses."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdr.model import Cdr
from core.cliout import CliError, instant, print_json
from core.pg import Conn
from runtime.services import Services

# Column order of the cdr_custom CSV (configs/asterisk/cdr_custom.conf).
ASTERISK_FIELDS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "linkedid", "userfield", "sequence",
)  # fmt: skip
ANSWERED = "ANSWERED"
BILLSEC_TOLERANCE_S = 1


class ReconcileError(ValueError):
    """Bad reconciliation input; `field` names it (an option, or the CSV and its line)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class Kind(StrEnum):
    MISSING_IN_TOLLGATE = "missing_in_tollgate"
    MISSING_IN_ASTERISK = "missing_in_asterisk"
    DISPOSITION = "disposition_mismatch"
    BILLSEC = "billsec_mismatch"
    ACCOUNT = "account_mismatch"
    UNSETTLED = "unsettled"


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ReconcileError("period", "bounds need a time zone")
        if self.end <= self.start:
            raise ReconcileError("period", "--to must be after --from")

    @classmethod
    def month(cls, text: str, timezone: str = "UTC") -> Window:
        try:
            first = datetime.strptime(text, "%Y-%m").replace(tzinfo=_zone(timezone))
        except ValueError:
            raise ReconcileError("period", f"YYYY-MM expected, got {text!r}") from None
        index = first.year * 12 + first.month
        after = first.replace(year=index // 12, month=index % 12 + 1)
        return cls(first.astimezone(UTC), after.astimezone(UTC))

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class AsteriskCall:
    """One call in Asterisk's CDRs: the rows of one key merged (a channel may leave several;
    their talk times add up)."""

    key: str
    uniqueid: str
    userfield: str
    account: str
    dst: str
    start: datetime
    answered: bool
    billsec: int
    disposition: str
    lastapp: str
    rows: int = 1

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for i in (self.userfield, self.uniqueid) if i))

    def merged(self, other: AsteriskCall) -> AsteriskCall:
        answered = self.answered or other.answered
        return AsteriskCall(
            self.key,
            self.uniqueid,
            self.userfield or other.userfield,
            self.account or other.account,
            self.dst,
            min(self.start, other.start),
            answered,
            self.billsec + other.billsec,
            ANSWERED if answered else other.disposition,
            other.lastapp,
            self.rows + other.rows,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "uniqueid": self.uniqueid,
            "userfield": self.userfield,
            "account": self.account,
            "dst": self.dst,
            "start": self.start.isoformat(),
            "billsec": self.billsec,
            "disposition": self.disposition,
            "lastapp": self.lastapp,
        }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReconcileError("timezone", f"unknown time zone {name!r}") from None


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a cdr_custom CSV (no header), as column -> value."""
    try:
        with Path(path).open(newline="", encoding="utf-8", errors="replace") as f:
            return [dict(zip(ASTERISK_FIELDS, row, strict=False)) for row in csv.reader(f) if row]
    except OSError as exc:
        raise ReconcileError(str(path), exc.strerror or str(exc)) from None


def parse_rows(rows: Iterable[Mapping[str, str]], timezone: str = "UTC") -> list[AsteriskCall]:
    """Asterisk rows as calls (merged per key), in the order first seen. Asterisk writes local
    wall-clock times of its host: `timezone` says which zone that is."""
    zone = _zone(timezone)
    calls: dict[str, AsteriskCall] = {}
    for n, row in enumerate(rows, 1):
        uniqueid = row.get("uniqueid", "").strip()
        userfield = row.get("userfield", "").strip()
        key = userfield or uniqueid
        if not key:
            raise ReconcileError(f"asterisk row {n}", "neither userfield nor uniqueid")
        try:
            start = datetime.fromisoformat(row.get("start", "").strip())
            billsec = int(row.get("billsec", "0").strip() or "0")
        except ValueError as exc:
            raise ReconcileError(f"asterisk row {n}", str(exc)) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=zone)
        disposition = row.get("disposition", "").strip().upper()
        call = AsteriskCall(
            key,
            uniqueid,
            userfield,
            row.get("accountcode", "").strip(),
            row.get("dst", "").strip(),
            start.astimezone(UTC),
            disposition == ANSWERED,
            billsec,
            disposition,
            row.get("lastapp", "").strip(),
        )
        calls[key] = calls[key].merged(call) if key in calls else call
    return list(calls.values())


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    call_id: str
    account: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "call_id": self.call_id,
            "account": self.account,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Report:
    window: Window
    tollgate_calls: int
    asterisk_calls: int
    matched: int
    differences: list[Difference] = field(default_factory=list)
    not_rated: list[AsteriskCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in Kind}
        for d in self.differences:
            out[d.kind.value] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.window.start.isoformat(),
            "to": self.window.end.isoformat(),
            "ok": self.ok,
            "tollgate_calls": self.tollgate_calls,
            "asterisk_calls": self.asterisk_calls,
            "matched": self.matched,
            "counts": self.counts(),
            "differences": [d.as_dict() for d in self.differences],
            "not_rated": [c.as_dict() for c in self.not_rated],
        }


def compare(t: Cdr, a: AsteriskCall) -> list[Difference]:
    """How tollgate's record of a call disagrees with Asterisk's."""
    out = []
    if a.account and a.account != t.account:
        out.append(Difference(Kind.ACCOUNT, t.call_id, t.account, f"asterisk: {a.account}"))
    if t.state == "expired":
        detail = f"no finish reached tollgate; asterisk: {a.disposition}, billsec {a.billsec}"
        return [*out, Difference(Kind.UNSETTLED, t.call_id, t.account, detail)]
    answered = t.state == "finished" and t.answered
    if answered != a.answered:
        detail = (
            f"tollgate: {t.state} {t.disposition or t.reason or '-'} billsec {t.billsec};"
            f" asterisk: {a.disposition} billsec {a.billsec}"
        )
        out.append(Difference(Kind.DISPOSITION, t.call_id, t.account, detail))
    elif answered and abs(t.billsec - a.billsec) > BILLSEC_TOLERANCE_S:
        detail = f"tollgate {t.billsec} s, asterisk {a.billsec} s"
        out.append(Difference(Kind.BILLSEC, t.call_id, t.account, detail))
    return out


async def _tollgate(conn: Conn, window: Window, switch: str | None) -> list[Cdr]:
    rows = await conn.fetch(
        "select * from cdrs where started_at >= $1 and started_at < $2"
        " and ($3::text is null or switch = $3) order by started_at, call_id",
        window.start,
        window.end,
        switch,
    )
    return [Cdr.from_row(r) for r in rows]


async def _by_ids(conn: Conn, ids: Sequence[str], switch: str | None) -> list[Cdr]:
    if not ids:
        return []
    # each partition's unique index on the call leads with the call id (cdr/ids.py)
    rows = await conn.fetch(
        "select * from cdrs where call_id = any($1::text[]) and ($2::text is null or switch = $2)",
        list(ids),
        switch,
    )
    return [Cdr.from_row(r) for r in rows]


def _index(cdrs: Iterable[Cdr]) -> dict[str, list[Cdr]]:
    out: dict[str, list[Cdr]] = {}
    for c in cdrs:
        out.setdefault(c.call_id, []).append(c)
    return out


def _match(a: AsteriskCall, known: Mapping[str, list[Cdr]], seen: set[Any]) -> Cdr | None:
    """tollgate's record of an Asterisk call: by call id, the same account first."""
    found = [c for i in a.ids for c in known.get(i, ()) if c.identity not in seen]
    return next((c for c in found if c.account == a.account), found[0] if found else None)


async def reconcile(
    conn: Conn,
    rows: Iterable[Mapping[str, str]],
    period: Window,
    *,
    asterisk_timezone: str = "UTC",
    switch: str | None = None,
) -> Report:
    """Compare tollgate's CDRs that started in `period` (of `switch`, if given) with the
    Asterisk rows (as read_csv returns them) that started in it. A call that straddles the
    period's edge (one side just inside, the other just outside) is looked up by id on the
    other side, so it is matched, not reported missing."""
    every = parse_rows(rows, asterisk_timezone)
    by_id = {i: call for call in every for i in call.ids}
    asterisk = [c for c in every if c.start in period]
    tollgate = await _tollgate(conn, period, switch)
    inside = _index(tollgate)
    outside = [i for c in asterisk for i in c.ids if i not in inside]
    known = _index([*await _by_ids(conn, outside, switch), *tollgate])

    differences: list[Difference] = []
    not_rated: list[AsteriskCall] = []
    seen: set[Any] = set()
    matched = 0
    for a in asterisk:
        t = _match(a, known, seen)
        if t is None:
            if not a.userfield and not a.answered:
                not_rated.append(a)
            else:
                detail = f"asterisk: {a.dst} {a.disposition} billsec {a.billsec}"
                differences.append(Difference(Kind.MISSING_IN_TOLLGATE, a.key, a.account, detail))
            continue
        seen.add(t.identity)
        matched += 1
        differences += compare(t, a)
    for t in tollgate:
        if t.identity in seen:
            continue
        other = by_id.get(t.call_id)
        if other is None or other.start in period:  # in period: it was matched to another
            detail = f"tollgate: {t.state} {t.e164 or t.raw} {t.reason} billsec {t.billsec}"
            differences.append(Difference(Kind.MISSING_IN_ASTERISK, t.call_id, t.account, detail))
            continue
        matched += 1  # Asterisk has it just outside the period
        differences += compare(t, other)
    return Report(period, len(tollgate), len(asterisk), matched, differences, not_rated)


# -- command line ----------------------------------------------------------------------------


def window_of(args: argparse.Namespace) -> Window:
    if args.period and (args.start or args.end):
        raise ReconcileError("--period", "give --period or --from/--to, not both")
    if args.period:
        return Window.month(args.period, args.tz)
    if not (args.start and args.end):
        raise ReconcileError("--period", "give --period YYYY-MM or both --from and --to")
    zone = _zone(args.tz)  # a wall-clock --from/--to is in --tz
    return Window(instant(args.start, "--from", zone), instant(args.end, "--to", zone))


async def cmd_cdr_reconcile(s: Services, args: argparse.Namespace) -> None:
    """`cdr reconcile`: the report as one JSON document (`ok` false when they differ)."""
    try:
        window = window_of(args)
        rows = read_csv(args.asterisk_csv)
        assert s.pool is not None
        async with s.pool.acquire() as conn:
            report = await reconcile(
                conn, rows, window, asterisk_timezone=args.asterisk_tz, switch=args.switch
            )
    except ReconcileError as exc:
        raise CliError(str(exc)) from None
    print_json(report.as_dict())
