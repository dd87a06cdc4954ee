"""The complaints register (terms §12).

A complaint may be filed up to 12 months after the event; the operator answers within
`answer_days` (14 in the operator's terms, 7 in the other provider's) counted in days of the
customer's calendar: the day of filing is not counted and the deadline ends at the end of
the last day, in the account's time zone. Unanswered by then, the complaint is deemed
accepted. An accepted complaint (answered or deemed) credits what the customer asked: a
ledger entry, and a credit note when an invoice concerned is known. A rejection may be
appealed within 14 days."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from billing.documents import Draft, Kind, Line, by_source, issue
from billing.errors import BillingError
from billing.labels import line_text
from billing.period import Period, add_months
from billing.postpaid import invoice_source
from billing.rounding import book_rounding
from billing.settings import BillingSettings
from core.env import EnvReader, SettingsError
from core.pg import Conn
from rating.account_store import AccountStore
from rating.accounts import AccountNotFound
from rating.money import format_micro

FILING_MONTHS = 12  # §12.1
APPEAL_DAYS = 14  # §12.6
OPEN = ("filed", "acknowledged")


def answer_days_from_env(env: Mapping[str, str] | None = None) -> int:
    """TOLLGATE_COMPLAINT_ANSWER_DAYS: 14 in the operator's terms, 7 in the other's."""
    days = EnvReader("TOLLGATE_COMPLAINT_", env).get("ANSWER_DAYS", int, 14)
    if not 1 <= days <= 90:
        raise SettingsError("TOLLGATE_COMPLAINT_ANSWER_DAYS", f"1..90 days, not {days}")
    return days


class ComplaintError(BillingError):
    """A complaint that cannot be filed or answered; `code` is stable."""

    def __init__(self, field: str, why: str, code: str) -> None:
        super().__init__(field, why)
        self.code = code


@dataclass(frozen=True, slots=True)
class Filing:
    account: str
    event_at: datetime
    description: str
    call_ids: tuple[str, ...] = ()
    invoice: str | None = None
    period: str | None = None
    requested: int = 0


@dataclass(frozen=True, slots=True)
class Complaint:
    id: int
    account: str
    call_ids: tuple[str, ...]
    invoice: str | None
    period: str | None
    event_at: datetime
    description: str
    requested: int
    answer_days: int
    filed_at: datetime
    due_at: datetime
    status: str
    acknowledged_at: datetime | None
    answered_at: datetime | None
    answer: str
    credited: int
    credit_note: str | None
    appeal_until: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Complaint:
        data = dict(row)
        data["call_ids"] = tuple(data["call_ids"])
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "id": self.id,
            "account": self.account,
            "call_ids": list(self.call_ids),
            "invoice": self.invoice,
            "period": self.period,
            "event_at": self.event_at.isoformat(),
            "description": self.description,
            "requested": format_micro(self.requested, 2),
            "answer_days": self.answer_days,
            "filed_at": self.filed_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "status": self.status,
            "acknowledged_at": iso(self.acknowledged_at),
            "answered_at": iso(self.answered_at),
            "answer": self.answer,
            "credited": format_micro(self.credited, 2),
            "credit_note": self.credit_note,
            "appeal_until": iso(self.appeal_until),
        }


def end_of_day_after(at: datetime, days: int, timezone: str) -> datetime:
    """The end of the `days`-th day after the local day of `at` (the day itself not
    counted), as a UTC instant: local midnight starting the day after that one."""
    zone = ZoneInfo(timezone)
    last: date = at.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)


def filing_deadline(event_at: datetime, timezone: str) -> datetime:
    """The last instant a complaint about `event_at` is accepted: the end of the day 12
    months after it (a month end is clamped: 31 March + 12 months = 31 March)."""
    same_day = add_months(event_at, FILING_MONTHS, timezone)
    return end_of_day_after(same_day, 0, timezone)


@dataclass(frozen=True, slots=True)
class _Holder:
    id: str
    timezone: str  # the customer's calendar for every deadline
    currency: str


async def _account(conn: Conn, account: str) -> _Holder:
    row = await conn.fetchrow("select id, timezone, currency from accounts where id = $1", account)
    if row is None:
        raise AccountNotFound(account)
    return _Holder(row["id"], row["timezone"], row["currency"])


def _check(filing: Filing, now: datetime, timezone: str) -> None:
    if not filing.description.strip():
        raise ComplaintError("description", "say what is wrong", "BAD_COMPLAINT")
    if not (filing.call_ids or filing.invoice or filing.period):
        raise ComplaintError("subject", "name the calls, an invoice or a period", "BAD_COMPLAINT")
    if filing.period is not None:
        Period.parse(filing.period)
    if filing.requested < 0:
        raise ComplaintError("requested", "must not be negative", "BAD_COMPLAINT")
    if filing.event_at > now:
        raise ComplaintError("event_at", "is in the future", "BAD_COMPLAINT")
    if now >= filing_deadline(filing.event_at, timezone):
        raise ComplaintError(
            "event_at",
            f"complaints are accepted up to {FILING_MONTHS} months after the event",
            "COMPLAINT_TOO_LATE",
        )


async def file(conn: Conn, filing: Filing, answer_days: int, now: datetime) -> Complaint:
    """Register a complaint filed at `now`; its deadline is in the account's time zone."""
    account = await _account(conn, filing.account)
    _check(filing, now, account.timezone)
    if filing.invoice is not None:
        found = await conn.fetchval(
            "select 1 from billing_documents where number = $1 and account = $2",
            filing.invoice,
            account.id,
        )
        if found is None:
            raise ComplaintError("invoice", f"no document {filing.invoice!r}", "BAD_COMPLAINT")
    row = await conn.fetchrow(
        "insert into complaints (account, call_ids, invoice, period, event_at, description,"
        " requested, answer_days, filed_at, due_at, status) values"
        " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'filed') returning *",
        account.id,
        list(filing.call_ids),
        filing.invoice,
        filing.period,
        filing.event_at,
        filing.description.strip(),
        filing.requested,
        answer_days,
        now,
        end_of_day_after(now, answer_days, account.timezone),
    )
    return Complaint.from_row(row)


async def get(conn: Conn, complaint_id: int, account: str | None = None) -> Complaint:
    """A complaint; with `account`, only that account's (a customer's own)."""
    row = await conn.fetchrow(
        "select * from complaints where id = $1 and ($2::text is null or account = $2)",
        complaint_id,
        account,
    )
    if row is None:
        raise ComplaintError("id", f"no complaint {complaint_id}", "UNKNOWN_COMPLAINT")
    return Complaint.from_row(row)


async def list_complaints(
    conn: Conn, account: str | None = None, status: str | None = None
) -> list[Complaint]:
    rows = await conn.fetch(
        "select * from complaints where ($1::text is null or account = $1)"
        " and ($2::text is null or status = $2) order by id",
        account,
        status,
    )
    return [Complaint.from_row(r) for r in rows]


async def acknowledge(conn: Conn, complaint_id: int, now: datetime) -> Complaint:
    row = await conn.fetchrow(
        "update complaints set status = 'acknowledged', acknowledged_at = $2"
        " where id = $1 and status = 'filed' returning *",
        complaint_id,
        now,
    )
    return Complaint.from_row(row) if row is not None else await get(conn, complaint_id)


async def overdue(conn: Conn, now: datetime) -> list[Complaint]:
    """Open complaints whose deadline has passed at `now` (deemed accepted once settled)."""
    rows = await conn.fetch(
        "select * from complaints where status = any($1::text[]) and due_at <= $2 order by id",
        list(OPEN),
        now,
    )
    return [Complaint.from_row(r) for r in rows]


async def answer(
    store: AccountStore,
    conn: Conn,
    settings: BillingSettings,
    complaint_id: int,
    accepted: bool,
    text: str,
    now: datetime,
    credit: int | None = None,
) -> Complaint:
    """The operator's answer at `now`. Too late, the complaint is already deemed accepted
    (and credited): COMPLAINT_DEEMED_ACCEPTED. `credit` (default: what was asked) is what an
    acceptance credits."""
    if not text.strip():
        raise ComplaintError("answer", "give the reasons (§12.5)", "BAD_COMPLAINT")
    current = await get(conn, complaint_id)
    if current.status not in OPEN:
        raise ComplaintError("id", f"already {current.status}", "COMPLAINT_CLOSED")
    if now >= current.due_at:
        await settle_overdue(store, conn, settings, now)
        raise ComplaintError(
            "id",
            f"the deadline passed at {current.due_at.isoformat()}: deemed accepted",
            "COMPLAINT_DEEMED_ACCEPTED",
        )
    amount = current.requested if credit is None else credit
    if amount < 0:
        raise ComplaintError("credit", "must not be negative", "BAD_COMPLAINT")
    status = "accepted" if accepted else "rejected"
    appeal = None
    if not accepted:
        account = await _account(conn, current.account)
        appeal = end_of_day_after(now, APPEAL_DAYS, account.timezone)
    row = await conn.fetchrow(
        "update complaints set status = $2, answer = $3, answered_at = $4, appeal_until = $5"
        " where id = $1 and status = any($6::text[]) returning *",
        complaint_id,
        status,
        text.strip(),
        now,
        appeal,
        list(OPEN),
    )
    if row is None:  # answered (or settled) concurrently
        raise ComplaintError("id", "answered meanwhile", "COMPLAINT_CLOSED")
    closed = Complaint.from_row(row)
    return await _credit(store, conn, settings, closed, amount, now) if accepted else closed


async def settle_overdue(
    store: AccountStore, conn: Conn, settings: BillingSettings, now: datetime
) -> list[Complaint]:
    """Every complaint unanswered at its deadline is deemed accepted and credited."""
    settled = []
    for late in await overdue(conn, now):
        row = await conn.fetchrow(
            "update complaints set status = 'deemed_accepted', answered_at = due_at,"
            " answer = 'deemed accepted: not answered in time (§12.4)'"
            " where id = $1 and status = any($2::text[]) returning *",
            late.id,
            list(OPEN),
        )
        if row is not None:
            closed = Complaint.from_row(row)
            settled.append(await _credit(store, conn, settings, closed, closed.requested, now))
    return settled


async def _invoice_concerned(conn: Conn, c: Complaint, account: _Holder) -> int | None:
    if c.invoice is not None:
        row = await conn.fetchrow(
            "select * from billing_documents where number = $1 and account = $2",
            c.invoice,
            c.account,
        )
        if row is not None and row["kind"] != Kind.CREDIT_NOTE.value:
            found: int = row["id"]
            return found
    period = Period.parse(c.period) if c.period else Period.of(c.event_at, account.timezone)
    doc = await by_source(conn, invoice_source(c.account, period))
    return None if doc is None else doc.id


async def _credit(
    store: AccountStore,
    conn: Conn,
    settings: BillingSettings,
    c: Complaint,
    amount: int,
    now: datetime,
) -> Complaint:
    """Credit `amount`: the ledger entry first (its reference makes a retry find it), then a
    credit note against the invoice concerned, when there is one."""
    if amount == 0:
        return c
    reference = f"complaint/{c.id}"
    await store.add_entry(
        c.account, "adjustment", amount, reference, f"complaint {c.id} accepted", at=now
    )
    account = await _account(conn, c.account)
    number = None
    corrects = await _invoice_concerned(conn, c, account)
    if corrects is not None:
        draft = Draft(
            Kind.CREDIT_NOTE,
            c.account,
            f"credit/{c.account}/{reference}",
            account.currency,
            now.astimezone(ZoneInfo(account.timezone)).date(),
            (_complaint_line(c.id, -amount),),
            period=c.period,
            corrects=corrects,
            note=f"uznana reklamacja nr {c.id}",  # the reason printed on the korekta
        )
        doc, _ = await issue(conn, draft, settings, now)
        await book_rounding(store, doc, now)
        number = doc.number
    row = await conn.fetchrow(
        "update complaints set credited = $2, credit_note = $3 where id = $1 returning *",
        c.id,
        amount,
        number,
    )
    return Complaint.from_row(row)


def _complaint_line(complaint: int, amount: int) -> Line:
    pl, en = line_text("complaint", id=complaint)
    return Line(pl, amount, text_en=en)
