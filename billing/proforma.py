"""Pro-forma invoices before a paid period (the second provider's terms, §: a pro-forma
within two business days of activation, and 21 days before a paid period ends, one for the
next period).

For prepaid accounts' subscriptions, by `bill run` (daily): the activation's pro-forma on
the first run on or after the day the subscription starts (a run later than 2 business days
after it, by the Polish calendar in business_days.py, is logged as late), the next month's
from `proforma_days_before` days before the current month ends (in the account's zone). They are
numbered in their own series (PF/...), never count as VAT invoices (nothing is owed on them
in the ledger), and are due when the period they ask for starts (moved to the next
business day when that is a day off, as every due date is). The VAT invoice is issued
when the money comes in (the top-up's invoice)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from billing.business_days import add_business_days
from billing.documents import Document, Draft, Kind, Line, issue
from billing.fees import Subscription, subscriptions_of
from billing.labels import MONTH, line_text
from billing.period import Period
from billing.settings import BillingSettings
from core.pg import Conn
from rating.accounts import Account, AccountKind, AccountStatus

ACTIVATION_BUSINESS_DAYS = 2
log = logging.getLogger("tollgate.billing")


def proforma_source(account: str, name: str, period: Period) -> str:
    return f"proforma/{account}/{name}/{period}"


def activation_deadline(sub: Subscription) -> date:
    """The last day for the activation's pro-forma: 2 business days after the start."""
    return add_business_days(sub.started_on, ACTIVATION_BUSINESS_DAYS)


def due_periods(sub: Subscription, today: date, settings: BillingSettings) -> list[Period]:
    """The periods `sub` should have a pro-forma for by `today` (a local date)."""
    current = Period(today.year, today.month)
    out = []
    if sub.started_on <= today and Period(sub.started_on.year, sub.started_on.month) == current:
        out.append(current)  # activation
    upcoming = current.shifted(1)
    if today >= upcoming.first_day - timedelta(days=settings.proforma_days_before) and (
        sub.active_in(upcoming)
    ):
        out.append(upcoming)
    return out


async def issue_proformas(
    conn: Conn, account: Account, settings: BillingSettings, now: datetime
) -> list[Document]:
    """The pro-formas due by `now` that are not issued yet (idempotent on their source)."""
    if not settings.proformas or account.kind is not AccountKind.PREPAID:
        return []
    if account.status is AccountStatus.CLOSED:
        return []
    day = now.astimezone(ZoneInfo(account.timezone)).date()
    current = Period(day.year, day.month)
    issued = []
    for sub in await subscriptions_of(conn, account.id):
        for period in due_periods(sub, day, settings):
            activation = period == current
            draft = proforma_draft(account, sub, period, activation=activation)
            doc, created = await issue(conn, draft, settings, now)
            if created:
                issued.append(doc)
                if activation and day > activation_deadline(sub):
                    log.warning("pro-forma %s issued after its deadline", doc.number)
    return issued


def proforma_draft(
    account: Account, sub: Subscription, period: Period, *, activation: bool
) -> Draft:
    """The pro-forma asking for `period` of `sub` (the activation's is due at once, a later
    period's when it starts); the per-account path and the batched bill run issue the same."""
    return Draft(
        Kind.PROFORMA,
        account.id,
        proforma_source(account.id, sub.name, period),
        account.currency,
        max(period.first_day, sub.started_on),
        (subscription_line(sub, period),),
        period=str(period),
        payment_method="transfer",
        due_date=None if activation else period.first_day,
    )


def subscription_line(sub: Subscription, period: Period) -> Line:
    pl, en = line_text("subscription", name=sub.name, period=period)
    return Line(pl, sub.monthly_fee, unit=MONTH, text_en=en)
