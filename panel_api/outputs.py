"""What the panel answers, as models the OpenAPI document is generated from (the views
build the JSON; schemathesis checks every answer against these). Money leaves as decimal
strings ("12.3400"), never as numbers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from abuse.findings import Status
from panel_api.cdr_query import FIELDS
from rating.account_store import ENTRY_KINDS
from rating.accounts import AccountKind, AccountStatus

Money = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{4,6}$", examples=["12.3400"])]
Money2 = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2,6}$", examples=["12.34"])]
Count = Annotated[int, Field(ge=0)]
# the code's own enums and kinds, so the document lists exactly what the code has
EntryKind = Literal[ENTRY_KINDS]  # type: ignore[valid-type]


class Output(BaseModel):
    """Base of the answers' models (documentation only: the views build the JSON)."""


class ErrorBody(Output):
    code: Annotated[str, Field(pattern="^[A-Z][A-Z0-9_]*$")]
    message: str
    details: dict[str, Any]


class Error(Output):
    error: ErrorBody


class Health(Output):
    status: str


class Token(Output):
    id: str
    role: Literal["customer", "operator"]
    account: str | None
    label: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    rotated_from: str | None = None
    read_only: bool = False
    login: str | None = None


class Session(Token):
    token: str


class Accepted(Output):
    status: Literal["accepted"]


class TopUpLink(Output):
    url: str | None
    gateway: str | None


class ResetDone(Output):
    login: str
    sessions_ended: Count


class LedgerEntry(Output):
    seq: int
    kind: EntryKind
    amount: Money
    reference: str | None
    note: str
    created_at: datetime


class Balance(Output):
    account: str
    status: AccountStatus
    blocked: Literal["suspended", "closed", "invoice_overdue"] | None
    timezone: str
    kind: AccountKind
    currency: str
    balance: Money
    reserved: Money
    credit_limit: Money
    available: Money
    open_calls: Count
    entries: list[LedgerEntry] = []


class LedgerEntries(Output):
    items: list[LedgerEntry]


_CDR_TYPES: dict[str, Any] = {
    "started_at": datetime,
    "answered_at": datetime | None,
    "ended_at": datetime,
    "billsec": Count,
    "cost": Money,
}
# one field per column the listing serves (cdr_query.FIELDS), 'class' by its alias
Cdr = create_model(  # type: ignore[call-overload]
    "Cdr",
    __base__=Output,
    **{
        f"{name}_" if name == "class" else name: (
            Annotated[_CDR_TYPES.get(name, str), Field(alias=name)],
            ...,
        )
        for name, _ in FIELDS
    },
)


class CdrFilter(Output):
    from_: datetime = Field(alias="from")
    to: datetime
    class_: str | None = Field(alias="class")
    number: str | None
    timezone: str


class CdrPage(Output):
    filter: CdrFilter
    items: list[Cdr]  # type: ignore[valid-type]
    next_cursor: str | None


class CallTotals(Output):
    calls: Count
    answered: Count
    billsec: Count
    cost: Money


class CdrTotals(Output):
    filter: CdrFilter
    currency: str
    total: CallTotals
    by_class: dict[str, CallTotals]


class Export(Output):
    url: str
    expires_in_s: int
    filter: CdrFilter


class Account(Output):
    id: str
    kind: AccountKind
    status: AccountStatus
    currency: str
    country: str
    timezone: str
    deck: str | None
    credit_limit: Money
    max_calls: int
    cps: int
    daily_cap: Money
    allow_premium: bool
    allow_high_risk: bool
    blocked_prefixes: list[str]
    invoice_overdue: bool
    customer_id: str | None = None
    unverified: bool = False
    numbers: list[str] = []
    caller_id: str | None = None
    sip_logins: list[str] = []
    inbound_max_calls: int = 0
    inbound_cps: int = 5


class Accounts(Output):
    items: list[Account]


class AccountWithBalance(Account):
    balance: Balance


class TopupResult(Output):
    entry: LedgerEntry
    created: bool
    balance: Balance


class DeckResult(Output):
    name: str
    version: int
    created: bool
    rows: int
    prefixes: int
    current: bool
    effective_at: datetime | None = None
    increases: int | None = None


class Import(Output):
    rows: Count
    created: Count
    unchanged: Count  # ids that existed: left as they are
    mirrored: Count  # accounts whose settings were written to Redis by this upload


class DeckVersion(Output):
    name: str
    version: int
    currency: str
    imported_at: datetime
    effective_at: datetime
    source: str
    current: bool
    rows: int


class DeckVersions(Output):
    items: list[DeckVersion]


class Totals(Output):
    name: str | None = None
    count: int
    billsec: int
    cost: Money


class StatementCall(Output):
    call_id: str
    started_at: datetime
    caller: str
    number: str
    class_: str = Field(alias="class")
    prefix: str
    destination: str
    direction: Literal["in", "out"] = "out"
    billsec: int
    cost: Money


class Statement(Output):
    account: str
    period: str
    timezone: str
    currency: str
    total: Totals
    by_class: dict[str, Totals]
    by_prefix: dict[str, Totals]
    calls: list[StatementCall]


class KsefState(Output):
    status: Literal["sent", "accepted", "rejected"]
    ksef_number: str | None
    upo: Literal["received", "pending"] | None  # KSeF's receipt: kept, or not produced yet
    upo_at: datetime | None


class Document(Output):
    number: str
    kind: Literal["invoice", "topup_invoice", "credit_note", "proforma"]
    account: str
    period: str | None
    corrects: int | None
    currency: str
    vat_rate: str
    net: Money2
    vat: Money2
    gross: Money2
    sale_date: date
    issue_date: date
    due_date: date | None
    issued_at: datetime
    lines: list[dict[str, Any]]
    vat_totals: list[dict[str, str]]
    seller: dict[str, Any] | None
    buyer: dict[str, Any] | None
    payment_method: str
    note: str
    owed: Money2 | None = None
    paid: Money2 | None = None
    outstanding: Money2 | None = None
    status: Literal["paid", "unpaid", "overdue"] | None = None
    ksef: KsefState | None = None  # sent to KSeF: its number and UPO


class Documents(Output):
    items: list[Document]


class GatewayPayment(Output):
    payment_id: str
    account: str
    amount: Money2
    created: bool  # False: this notification was booked before
    invoice: str | None  # prepaid: the top-up's invoice number


class FindingEvent(Output):
    event: str
    at: datetime
    who: str
    why: str
    detail: dict[str, Any]


class Finding(Output):
    id: int
    account: str
    rule: str
    subject: str
    window: str
    severity: Literal["info", "warning", "critical"]
    status: Status
    action: Literal["record", "alert", "warn", "suspend"]
    suspended: bool
    hits: int
    evidence: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status_by: str | None = None
    status_reason: str | None = None
    status_at: datetime | None = None
    last_seen_at: datetime | None = None
    warned_at: datetime | None = None
    deadline_at: datetime | None = None
    warning_id: int | None = None
    closure: Literal["proposed", "accepted", "rejected"] | None = None
    closure_at: datetime | None = None
    false_alarm: bool = False
    account_resumed: bool | None = None
    timeline: list[FindingEvent] | None = None


class Findings(Output):
    items: list[Finding]


class CustomerFindingEvent(Output):
    event: Literal[
        "detected",
        "warned",
        "continued",
        "suspended",
        "lifted",
        "resumed",
        "closed",
        "account_closed",
    ]
    at: datetime
    deadline: datetime | None = None


class CustomerFinding(Output):
    id: int
    rule: str
    severity: Literal["info", "warning", "critical"]
    status: Status
    suspended: bool
    warned_at: datetime | None
    deadline_at: datetime | None
    created_at: datetime
    timeline: list[CustomerFindingEvent]


class CustomerFindings(Output):
    items: list[CustomerFinding]


class RunningCall(Output):
    call_id: str
    switch: str
    account: str
    number: str
    class_: str = Field(alias="class")
    control: str
    granted_s: int
    reserved: Money
    authorized_at: datetime | None
    answered_at: datetime | None


class RunningCalls(Output):
    items: list[RunningCall]


class HungUp(Output):
    call_id: str
    hung_up: bool


class CustomerRecord(Output):
    id: str
    legal_name: str
    email: str
    kind: Literal["consumer", "business"]
    tax_id: str | None
    vat_id: str | None
    street: str
    postal_code: str
    city: str
    country: str
    phone: str | None
    language: str
    verification: Literal["pending", "verified", "rejected"]
    verification_by: str | None
    verification_at: datetime | None
    verification_note: str
    first_topup_at: datetime | None
    contract_started_at: datetime | None
    anonymised_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    accounts: list[str] = []


class Customers(Output):
    items: list[CustomerRecord]


class PersonalData(Output):
    customer: CustomerRecord
    accounts: list[dict[str, Any]]
    ledger_entries: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    history: list[dict[str, Any]]


class Number(Output):
    e164: str
    country: str
    type: Literal["geographic", "mobile", "non_geographic", "foreign"]
    carrier: str
    monthly_cost: Money2
    monthly_price: Money2
    status: Literal["free", "assigned", "quarantined", "ported_out"]
    account: str | None
    assigned_at: datetime | None
    quarantined_until: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class Numbers(Output):
    items: list[Number]


class Carrier(Output):
    name: str
    deck: str
    trunk: str
    endpoint: str
    priority: int
    max_calls: int
    cps: int
    disabled: bool
    csv_columns: str
    created_at: datetime | None
    updated_at: datetime | None


class Carriers(Output):
    items: list[Carrier]


class CarrierEvent(Output):
    event: str
    actor: str
    detail: dict[str, Any]
    at: datetime


class CarrierWithHistory(Carrier):
    history: list[CarrierEvent]


class PlanAllowance(Output):
    seconds: int
    classes: list[str]
    prefixes: list[str]
    label: str


class Plan(Output):
    name: str
    period: str
    fee: Money
    currency: str
    allowances: list[PlanAllowance]
    disabled: bool
    disabled_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class Plans(Output):
    items: list[Plan]


class PlanEvent(Output):
    account: str | None
    event: str
    actor: str
    detail: dict[str, Any]
    at: datetime


class PlanWithHistory(Plan):
    history: list[PlanEvent]


class PlanAssignment(Output):
    id: int
    account: str
    plan: str
    start_at: datetime
    end_at: datetime | None


class BundleUsage(Output):
    plan: str
    assignment: int
    allowance: int
    label: str
    period: str
    seconds: int
    consumed: int
    reserved: int
    left: int


class AccountPlan(Output):
    account: str
    plans: list[PlanAssignment]
    bundles: list[BundleUsage]


class MarginLine(Output):
    carrier: str | None = None
    prefix: str | None = None
    rate_name: str | None = None
    account: str | None = None
    currency: str
    calls: int
    billsec: int
    sell: Money
    buy: Money
    margin: Money
    margin_micro: int


class MarginReport(Output):
    period: str
    from_: Annotated[datetime, Field(alias="from")]
    to: datetime
    carriers: list[MarginLine]
    destinations: list[MarginLine]
    accounts: list[MarginLine]


class FxRate(Output):
    base: str
    quote: str
    rate: str
    effective_at: datetime
    replaced: str | None = None


class FxRates(Output):
    items: list[FxRate]


class CarrierQuality(Output):
    carrier: str
    attempts: int
    answered: int
    asr_percent: float | None
    acd_s: float | None
    failure_codes: dict[str, int]


class CarrierQualityReport(Output):
    period: str
    from_: Annotated[datetime, Field(alias="from")]
    to: datetime
    carriers: list[CarrierQuality]


class PlanPrice(Output):
    deck: str
    prefix: str
    name: str
    currency: str
    cost: str  # in the deck's decimals
    cost_micro: int
    deck_currency: str | None = None
    deck_cost: str | None = None
    fx_rate: str | None = None


class PlannedRoute(Output):
    carrier: str
    endpoint: str
    priority: int
    cost: str  # in the deck's decimals
    cost_micro: int
    margin_micro: int
    deck: str
    prefix: str
    deck_currency: str | None = None
    deck_cost: str | None = None
    fx_rate: str | None = None


class SkippedCarrier(Output):
    carrier: str
    why: str


class RoutePlan(Output):
    number: str
    at: datetime
    seconds: int
    sell: PlanPrice | None
    routes: list[PlannedRoute]
    skipped: list[SkippedCarrier]
    loss_allowed: bool
    refused: str | None = Field(
        None, description="NO_ROUTE, NO_PROFITABLE_ROUTE or NO_RATE when no carrier would be tried"
    )


class AccountNumbers(Output):
    numbers: list[str]
    caller_id: str | None


class SipRegistration(Output):
    uri: str
    user_agent: str
    expires_at: datetime | None
    source: str


class SipLogin(Output):
    """A SIP login as anyone may see it: never its password."""

    login: Annotated[str, Field(pattern="^[0-9]{4,15}$")]
    account: str
    status: Literal["active", "disabled", "locked"]
    status_reason: str
    max_contacts: Annotated[int, Field(ge=1, le=100)]
    realm: str
    created_at: datetime
    updated_at: datetime
    registrations: list[SipRegistration]


class SipLogins(Output):
    items: list[SipLogin]


class SipCredentials(SipLogin):
    """A login with its new password: answered once, when the password is set."""

    username: str
    password: str


class AuditEntry(Output):
    id: int
    at: datetime
    actor: str
    token_id: str
    read_only: bool
    action: str
    method: str
    path: str
    status: int
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: dict[str, Any]


class AuditEntries(Output):
    items: list[AuditEntry]


class Complaint(Output):
    account: str
    call_ids: list[str]
    invoice: str | None
    period: str | None
    event_at: datetime
    description: str
    requested: Money2
    answer_days: Annotated[int, Field(ge=1)]
    filed_at: datetime
    due_at: datetime
    status: Literal["filed", "acknowledged", "accepted", "rejected", "deemed_accepted"]
    acknowledged_at: datetime | None
    answered_at: datetime | None
    answer: str
    credited: Money2
    credit_note: str | None
    appeal_until: datetime | None


class Complaints(Output):
    items: list[Complaint]
