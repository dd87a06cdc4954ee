"""Pro-formas by `bill run` at pinned instants: at activation, and from 21 days before the
paid month ends for the next one (at month edges: 30- and 31-day months, February), in their
own series, once each, and never for a month the subscription does not reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from billing.fees import subscribe, unsubscribe
from billing.period import Period
from billing.run import bill_run
from billing.settings import BillingSettings
from rating.accounts import AccountKind
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
SETTINGS = BillingSettings(proformas=True)  # TOLLGATE_BILLING_PROFORMAS=1


@pytest.fixture(autouse=True)
async def _tables(svc: Services) -> AsyncIterator[None]:
    assert svc.pool is not None
    await svc.pool.execute(
        "truncate billing_documents, document_series, subscriptions, billing_events cascade"
    )
    yield


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Warsaw")).astimezone(UTC)


async def proformas_at(svc: Services, text: str) -> list[tuple[str, str | None, date | None]]:
    now = local(text)
    report = await bill_run(
        svc.accounts, Period.of(now, "Europe/Warsaw").shifted(-1), SETTINGS, now
    )
    assert not report.failed, report.failed
    return [(d.number, d.period, d.due_date) for d in report.documents if d.kind == "proforma"]


async def test_activation_and_next_month_proformas_at_their_days(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(at=local("2026-11-02T10:00"))
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, acct.id, "pbx", 49 * PLN, date(2026, 11, 3))
    assert await proformas_at(svc, "2026-11-02T23:59") == []
    assert await proformas_at(svc, "2026-11-03T00:00") == [
        ("PF/2026/11/000001", "2026-11", date(2026, 11, 17)),  # due_days after issue
    ]
    assert await proformas_at(svc, "2026-11-03T12:00") == []  # once
    # 21 days before the paid month ends (December starts on the 1st): from 10 November
    assert await proformas_at(svc, "2026-11-09T23:59:59") == []
    assert await proformas_at(svc, "2026-11-10T00:00") == [
        ("PF/2026/11/000002", "2026-12", date(2026, 12, 1)),
    ]
    assert await proformas_at(svc, "2026-11-25T00:00") == []
    # a 31-day month: January's from 11 December
    assert await proformas_at(svc, "2026-12-10T23:59") == []
    assert await proformas_at(svc, "2026-12-11T00:00") == [
        # due on the 1st, a holiday (New Year), then a weekend: the next business day
        ("PF/2026/12/000001", "2027-01", date(2027, 1, 4)),
    ]
    # February is shorter: March's from 8 February; a month no run saw is not caught up
    assert await proformas_at(svc, "2027-02-07T23:59") == []
    assert await proformas_at(svc, "2027-02-08T00:00") == [
        ("PF/2027/02/000001", "2027-03", date(2027, 3, 1)),
    ]


async def test_no_proforma_past_the_subscription_or_for_postpaid(
    svc: Services, make_account: AccountFactory
) -> None:
    pre = await make_account(at=local("2026-11-02T10:00"))
    post = await make_account(kind=AccountKind.POSTPAID, at=local("2026-11-02T10:00"))
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, pre.id, "pbx", 49 * PLN, date(2026, 10, 1))
        await unsubscribe(conn, pre.id, "pbx", date(2026, 11, 30))
        await subscribe(conn, post.id, "trunk", 30 * PLN, date(2026, 11, 2))
    assert await proformas_at(svc, "2026-11-20T12:00") == []


async def test_proformas_are_the_operators_choice(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(at=local("2026-11-02T10:00"))
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, acct.id, "pbx", 49 * PLN, date(2026, 11, 3))
    now = local("2026-11-20T12:00")
    off = await bill_run(svc.accounts, Period(2026, 10), BillingSettings(), now)
    assert off.documents == []
    assert BillingSettings.from_env({"TOLLGATE_BILLING_PROFORMAS": "1"}).proformas
