"""Billing against the real Redis and PostgreSQL: periods in the account's zone, invoices
(VAT, numbering, immutability), fees, the postpaid overdue block through the ledger, the
prepaid lifecycle, re-rating, and idempotent runs.

Billing runs at explicit instants (`now`), so every test passes on any day: scenarios with no
calls are pinned to fixed dates (and the lifecycle ones run at a list of calendar edges);
calls through the ledger happen on the real clock, so those tests bill the period the calls
fell in (`await this_period()`, taken before the first call)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import cli_args as billing_cli
from billing.business_days import next_business_day
from billing.documents import Draft, Kind, Line, documents_of, issue
from billing.errors import BillingError
from billing.fees import fee_reference, subscribe, unsubscribe
from billing.listing import listing
from billing.numbering import next_number
from billing.payments import pay
from billing.period import Period, add_months
from billing.postpaid import invoice_statuses
from billing.prepaid import CLOSED, FOREIGN, RESTORED, foreign_prefixes, negative_since
from billing.rerate import rerate
from billing.run import RunReport, bill_run
from billing.settings import BillingSettings, percent_to_bp
from billing.vat import split_gross
from cdr.model import Cdr
from cdr.partitions import ensure_months
from cdr.store import prepare, write_batch
from cdr.writer import CdrWriter, WriterSettings
from rating.accounts import AccountKind, AccountStatus
from rating.deck import Deck
from rating.ledger import CallRequest, Outcome
from rating.money import format_micro
from runtime.services import Services
from runtime.settings import SettingsError
from tests.conftest import AccountFactory, install_deck

PLN = 1_000_000
GROSZ = 10_000
WARSAW = "Europe/Warsaw"
SETTINGS = BillingSettings(foreign_block=True)  # the lifecycle tests cover the optional block too
MY_TABLES = (
    "rerate_calls",
    "rerates",
    "billing_events",
    "billing_documents",
    "document_series",
    "subscriptions",
)


@pytest.fixture(autouse=True)
async def billing_tables(svc: Services) -> AsyncIterator[None]:
    """This module's tables start empty (the shared fixture truncates the core ones)."""
    assert svc.pool is not None
    await svc.pool.execute(f"truncate {', '.join(MY_TABLES)} cascade")
    yield


# -- helpers ---------------------------------------------------------------------------------


def local(text: str, zone: str = WARSAW) -> datetime:
    """A wall-clock time in `zone`, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def cdr(account: str, started: datetime, billsec: int = 60, **changes: Any) -> Cdr:
    """A finished, answered call to a Polish mobile, rated with retail v1 (0.19 PLN/min)."""
    answered = started + timedelta(seconds=2)
    cost = -(-billsec * 190_000 // 60 // 100) * 100  # per second, rounded up to 4 decimals
    fields: dict[str, Any] = {
        "call_id": f"c-{uuid.uuid4().hex[:12]}",
        "started_at": started,
        "account": account,
        "state": "finished",
        "ended_at": answered + timedelta(seconds=billsec),
        "decision": "ALLOW",
        "reason": "OK",
        "raw": "601234567",
        "e164": "+48601234567",
        "number_class": "mobile",
        "switch": "test",
        "prefix": "4860",
        "rate_name": "Poland mobile",
        "deck": "retail",
        "deck_version": 1,
        "currency": "PLN",
        "authorized_at": started,
        "answered_at": answered,
        "billsec": billsec,
        "answered": billsec > 0,
        "rated_cost": cost,
        "cost": cost,
        "disposition": "ANSWER",
        "hangup_cause": "16",
        "stream_id": "0-1",
    }
    fields.update(changes)
    return Cdr(**fields)


async def store_cdrs(dsn: str, cdrs: Sequence[Cdr]) -> None:
    """Write CDRs the way the CDR writer does (partitions made as needed)."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare(conn)
        await ensure_months(conn, [c.started_at for c in cdrs])
        await write_batch(conn, "test", cdrs)
    finally:
        await conn.close()


async def call(svc: Services, account: str, billsec: int, to: str = "0601234567") -> str:
    """A call through the ledger (authorize, finish), its CDR moved to PostgreSQL."""
    grant = await svc.ledger.authorize(
        CallRequest(account, f"c-{uuid.uuid4().hex[:12]}", to, "600100200")
    )
    assert grant.allowed, grant
    outcome = Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER", "16")
    await svc.ledger.finish(account, grant.call_id, outcome)
    await drain(svc)
    return grant.call_id


async def drain(svc: Services) -> None:
    settings = WriterSettings(consumer="test-billing")
    async with CdrWriter(svc.redis, svc.settings.keyspace, svc.settings.pg_dsn, settings) as w:
        await w.drain_once()


async def run(svc: Services, period: Period, now: datetime) -> RunReport:
    return await bill_run(svc.accounts, period, SETTINGS, now)


async def docs(svc: Services, account: str) -> list[Any]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return await documents_of(conn, account)


T0 = local("2026-11-20T12:00")  # "today" of the tests that need no particular day

# Calendar edges every lifecycle scenario is run at ("today" in Warsaw): the 1st, the 15th,
# 28 February of a common year, 29 February of a leap year, a 31st, both DST change days,
# and the last half hour of a year.
EDGES = (
    "2027-01-01T00:05",
    "2027-01-15T12:00",
    "2027-02-28T12:00",
    "2028-02-29T12:00",
    "2027-03-31T12:00",
    "2027-03-28T01:30",  # clocks go forward at 02:00 that night
    "2027-10-31T02:30",  # clocks go back at 03:00: this hour happens twice
    "2026-12-31T23:30",
)
# issue date + 14 days falls on a Sunday: the deadline moves to Monday (art. 115 KC)
DUE_MOVED = {
    "2027-02-28T12:00": date(2027, 3, 15),
    "2027-03-28T01:30": date(2027, 4, 12),
    "2027-10-31T02:30": date(2027, 11, 15),
}


async def this_period() -> Period:
    """The Warsaw month that calls placed now through the ledger (on the real clock) belong
    to. Within a minute of a month's end it first waits for the next month, so the calls of
    one test never straddle two periods, whatever the day and time it runs."""
    now = datetime.now(UTC)
    period = Period.of(now, WARSAW)
    left = (period.bounds(WARSAW)[1] - now).total_seconds()
    if left < 60:
        await asyncio.sleep(left + 1)
        period = period.shifted(1)
    return period


def after(period: Period, days: float = 0, zone: str = WARSAW) -> datetime:
    """`days` after the end of `period` (local midnight of the next 1st) in `zone`."""
    return period.bounds(zone)[1] + timedelta(days=days)


def parser() -> argparse.ArgumentParser:
    from cdr import cli_args as reconcile

    p = argparse.ArgumentParser(prog="tollgate")
    sub = p.add_subparsers(dest="command", required=True)
    billing_cli.register(sub)
    reconcile.register(sub)  # shares the `cdr` group with `cdr rerate`
    return p


async def cli(svc: Services, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    args = parser().parse_args(argv)
    capsys.readouterr()
    await args.run(svc, args)
    out = capsys.readouterr().out
    return out if "--csv" in argv else json.loads(out)


# -- VAT and settings ------------------------------------------------------------------------


def test_vat_split_of_a_gross_amount_is_exact() -> None:
    s = split_gross(100 * PLN, 2300)
    assert (s.net, s.vat) == (81_300_000, 18_700_000)  # 100 x 23/123 = 18.699... -> 18.70
    s = split_gross(PLN, 2300)
    assert (s.net, s.vat) == (810_000, 190_000)  # 0.18699 -> 0.19
    assert split_gross(-100 * PLN, 2300).vat == -18_700_000  # a credit note mirrors
    assert split_gross(12_345_678, 0).vat == 0
    assert split_gross(GROSZ, 10_000).vat == GROSZ  # exactly half a grosz rounds up
    assert split_gross(-GROSZ, 10_000).vat == -GROSZ  # ... away from zero
    assert percent_to_bp("23") == 2300 and percent_to_bp("5.5") == 550
    for bad in ("23.001", "101", "x"):
        with pytest.raises(SettingsError):
            percent_to_bp(bad)
    env = {"TOLLGATE_BILLING_VAT_RATE": "8", "TOLLGATE_BILLING_TIMEZONE": "UTC"}
    assert BillingSettings.from_env(env) == BillingSettings(vat_rate_bp=800, timezone="UTC")


@given(st.integers(-(10**12), 10**12), st.integers(0, 10_000))
def test_vat_split_invariants(gross: int, rate_bp: int) -> None:
    s = split_gross(gross, rate_bp)
    assert s.net + s.vat == gross
    assert s.vat % GROSZ == 0
    exact = Fraction(gross * rate_bp, 10_000 + rate_bp)
    assert abs(s.vat - exact) <= Fraction(GROSZ, 2)
    assert split_gross(-gross, rate_bp).vat == -s.vat


def test_periods_are_months_of_a_zone() -> None:
    assert str(Period.parse("2026-02")) == "2026-02"
    for bad in ("2026-13", "26-01", "2026/01", ""):
        with pytest.raises(BillingError):
            Period.parse(bad)
    start, end = Period(2026, 10).bounds(WARSAW)
    assert (start, end) == (local("2026-10-01T00:00"), local("2026-11-01T00:00"))
    assert end - start == timedelta(days=31, hours=1)  # DST ends on 25 October
    assert Period(2026, 12).shifted(1) == Period(2027, 1)
    assert add_months(local("2026-11-30T12:00"), 3, WARSAW) == local("2027-02-28T12:00")


# -- periods, time zones, listing ------------------------------------------------------------


async def test_a_call_belongs_to_the_month_of_its_start_in_the_accounts_zone(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    ny = await make_account(id="acct-ny", timezone="America/New_York")
    pl = await make_account(id="acct-pl")
    # 23:59:59 local on 31 October is already 1 November in UTC (New York is behind) ...
    ny_last = cdr(ny.id, local("2026-10-31T23:59:59", "America/New_York"), 60)
    ny_first = cdr(ny.id, local("2026-11-01T00:00:00", "America/New_York"), 30)
    # ... and 00:00:30 local on 1 November is still 31 October in UTC (Warsaw is ahead)
    pl_last = cdr(pl.id, local("2026-10-31T23:59:59"), 45)
    pl_first = cdr(pl.id, local("2026-11-01T00:00:30"), 7)
    assert ny_last.started_at.month == 11 and pl_first.started_at.month == 10  # in UTC
    await store_cdrs(svc.settings.pg_dsn, [ny_last, ny_first, pl_last, pl_first])
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        for account, month, expected in (
            (ny, Period(2026, 10), [ny_last]),
            (ny, Period(2026, 11), [ny_first]),
            (pl, Period(2026, 10), [pl_last]),
            (pl, Period(2026, 11), [pl_first]),
        ):
            got = await listing(conn, account, month)
            assert [c.cdr.call_id for c in got.calls] == [c.call_id for c in expected]
            assert got.total.cost == sum(c.cost for c in expected)
    # and the invoice of October (postpaid) takes the same calls
    biz = await make_account(
        id="acct-biz", kind=AccountKind.POSTPAID, credit_limit=100 * PLN, timezone="Asia/Tokyo"
    )
    edge = cdr(biz.id, local("2026-10-31T23:59:59", "Asia/Tokyo"), 60)  # 14:59:59 UTC
    nxt = cdr(biz.id, local("2026-11-01T00:00:00", "Asia/Tokyo"), 60)
    await store_cdrs(svc.settings.pg_dsn, [edge, nxt])
    report = await run(svc, Period(2026, 10), after(Period(2026, 10), 1))
    [invoice] = [d for d in report.documents if d.account == biz.id]
    assert invoice.gross == edge.cost and invoice.lines[0]["quantity"] == 1
    listed = await cli(svc, capsys, "bill", "listing", "--account", pl.id, "--period", "2026-11")
    assert [c["call_id"] for c in listed["calls"]] == [pl_first.call_id]
    assert listed["calls"][0]["started_at"] == "2026-11-01T00:00:30+01:00"


async def test_listing_totals_by_destination_class_and_prefix(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await make_account()
    day = local("2026-11-10T12:00")
    calls = [
        cdr(a.id, day, 60),
        cdr(a.id, day + timedelta(minutes=5), 30, e164="+48511222333", prefix="4851"),
        cdr(a.id, day + timedelta(minutes=9), 120, e164="+48221234567", prefix="4822",
            number_class="geographic", rate_name="Poland Warsaw", cost=180_000, rated_cost=180_000),
        cdr(a.id, day + timedelta(minutes=20), 15, e164="112", raw="112", prefix="",
            number_class="emergency", rate_name="", cost=0, rated_cost=0, emergency=True),
        cdr(a.id, day + timedelta(minutes=30), 0, answered=False, cost=0, rated_cost=0,
            disposition="NOANSWER"),  # unanswered: not listed
        cdr(a.id, day + timedelta(minutes=40), 0, state="denied", answered=False, cost=0,
            rated_cost=0, decision="DENY", reason="INSUFFICIENT_CREDIT"),  # refused: not listed
    ]  # fmt: skip
    await store_cdrs(svc.settings.pg_dsn, calls)
    out = await cli(svc, capsys, "bill", "listing", "--account", a.id, "--period", "2026-11")
    assert out["total"] == {"count": 4, "billsec": 225, "cost": "0.4650"}
    assert out["by_class"] == {
        "emergency": {"count": 1, "billsec": 15, "cost": "0.0000"},
        "geographic": {"count": 1, "billsec": 120, "cost": "0.1800"},
        "mobile": {"count": 2, "billsec": 90, "cost": "0.2850"},
    }
    assert out["by_prefix"]["4860"] == {
        "name": "Poland mobile", "count": 1, "billsec": 60, "cost": "0.1900",
    }  # fmt: skip
    assert set(out["by_prefix"]) == {"-", "4822", "4851", "4860"}
    text = await cli(svc, capsys, "bill", "listing", "--account", a.id, "--period", "2026-11",
                     "--csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["call_id"] for r in rows] == [c.call_id for c in calls[:4]]
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("0.465")


# -- documents: VAT, numbering, immutability -------------------------------------------------


async def test_every_top_up_gets_one_invoice_with_the_vat_split(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await make_account(balance=100 * PLN, at=T0)  # an opening top-up
    await svc.accounts.add_entry(a.id, "topup", 20 * PLN, "bank-1", at=T0)
    await svc.accounts.add_entry(a.id, "adjustment", -PLN, note="not a top-up", at=T0)
    now = T0 + timedelta(minutes=1)
    period = Period.of(T0, WARSAW)
    first = await run(svc, period, now)
    assert [(d.kind, d.gross, d.net, d.vat) for d in first.documents] == [
        (Kind.TOPUP_INVOICE, 100 * PLN, 81_300_000, 18_700_000),
        (Kind.TOPUP_INVOICE, 20 * PLN, 16_260_000, 3_740_000),  # 20 x 23/123 = 3.7398...
    ]
    assert not (await run(svc, period, now)).changed
    # a payment through billing is invoiced at once, and only once
    when = (now + timedelta(minutes=1)).isoformat()
    paid = await cli(svc, capsys, "bill", "pay", "--account", a.id, "--amount", "12.30",
                     "--reference", "bank-2", "--now", when)  # fmt: skip
    again = await cli(svc, capsys, "bill", "pay", "--account", a.id, "--amount", "12.30",
                      "--reference", "bank-2", "--now", when)  # fmt: skip
    assert paid["created"] and not again["created"] and paid["invoice"] == again["invoice"]
    assert (await svc.accounts.live(a.id)).balance == 131_300_000
    listed = await cli(svc, capsys, "bill", "invoices", "--account", a.id, "--now", when)
    assert [(d["gross"], d["net"], d["vat"], d["status"]) for d in listed] == [
        ("100.00", "81.30", "18.70", "paid"),
        ("20.00", "16.26", "3.74", "paid"),
        ("12.30", "10.00", "2.30", "paid"),
    ]
    assert [d["issue_date"] for d in listed] == [T0.date().isoformat()] * 3
    assert not (await run(svc, period, now)).changed


async def test_numbers_are_gapless_per_series_even_concurrently_and_after_a_rollback(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    now = local("2031-03-15T12:00")
    assert svc.pool is not None

    async def one(n: int) -> str:
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            draft = Draft(Kind.TOPUP_INVOICE, a.id, f"test/{n}", "PLN", now.date(),
                          (Line("top-up", PLN),))  # fmt: skip
            doc, created = await issue(conn, draft, SETTINGS, now)
            assert created
            return doc.number

    numbers = await asyncio.gather(*(one(n) for n in range(12)))
    async with svc.pool.acquire() as conn:
        # a transaction that takes a number and rolls back leaves no gap
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await next_number(conn, "INV", now.date())
                raise RuntimeError("issuing failed")
    numbers.append(await one(12))
    assert sorted(numbers) == [f"INV/2031/03/{n:06d}" for n in range(1, 14)]
    # the same source again issues nothing; another series counts on its own
    async with svc.pool.acquire() as conn:
        draft = Draft(Kind.TOPUP_INVOICE, a.id, "test/0", "PLN", now.date(), (Line("x", 1),))
        doc, created = await issue(conn, draft, SETTINGS, now)
        assert not created and doc.gross == PLN
        draft = replace(draft, source="test/april")
        doc, _ = await issue(conn, draft, SETTINGS, local("2031-04-01T00:00"))
        assert doc.number == "INV/2031/04/000001"


async def test_issued_documents_cannot_be_changed_only_corrected(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN, at=T0)
    [doc] = (await run(svc, Period.of(T0, WARSAW), T0 + timedelta(seconds=1))).documents
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        for sql in (
            "update billing_documents set gross = 1, net = 1, vat = 0 where id = $1",
            "update billing_documents set note = 'edited' where id = $1",
            "delete from billing_documents where id = $1",
        ):
            with pytest.raises(asyncpg.RaiseError, match="cannot be changed"):
                await conn.execute(sql, doc.id)
        [kept] = await documents_of(conn, a.id)
        assert kept == doc


# -- fees and runs ---------------------------------------------------------------------------


async def test_fees_are_charged_once_per_account_and_period(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=100 * PLN)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, a.id, "line", 20 * PLN, date(2026, 1, 1))
        await subscribe(conn, a.id, "fax", 5 * PLN, date(2026, 1, 1))
        await unsubscribe(conn, a.id, "fax", date(2026, 11, 30))
        with pytest.raises(BillingError):
            await subscribe(conn, a.id, "", PLN, date(2026, 1, 1))
    nov, dec = Period(2026, 11), Period(2026, 12)
    first = await run(svc, nov, after(nov))
    assert sorted((e.reference, e.amount) for e in first.fees) == [
        (fee_reference(nov, "fax"), -5 * PLN),
        (fee_reference(nov, "line"), -20 * PLN),
    ]
    assert (await run(svc, nov, after(nov, 3))).fees == []
    assert [e.reference for e in (await run(svc, dec, after(dec))).fees] == ["fee/2026-12/line"]
    assert (await svc.accounts.live(a.id)).balance == 55 * PLN
    # a period that has not ended in the account's zone is not charged yet
    early = await run(svc, Period(2027, 1), after(Period(2027, 1), -1))
    assert early.fees == [] and a.id in early.not_over


async def test_a_second_run_issues_nothing_new(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    pre = await make_account(balance=10 * PLN)
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=50 * PLN)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        for account in (pre, biz):
            await subscribe(conn, account.id, "plan", 15 * PLN, date(2026, 1, 1))
    period = await this_period()
    await call(svc, biz.id, 61)
    now = after(period, 20)
    first = await run(svc, period, now)
    assert len(first.fees) == 2 and {d.kind for d in first.documents} == {
        Kind.TOPUP_INVOICE,
        Kind.INVOICE,
    }
    assert first.changed
    before = [await docs(svc, x.id) for x in (pre, biz)]
    second = await run(svc, period, now)
    assert not second.changed, second.as_dict()
    assert [await docs(svc, x.id) for x in (pre, biz)] == before


# -- postpaid: invoices, overdue, payment ----------------------------------------------------


async def test_an_overdue_invoice_blocks_calls_until_it_is_paid(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=100 * PLN)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, biz.id, "trunk", 30 * PLN, date(2026, 1, 1))
    period = await this_period()
    for billsec in (60, 90, 7):
        await call(svc, biz.id, billsec)
    calls_cost = 190_000 + 285_000 + 22_200
    issued = after(period, 5 / 1440)  # 00:05 on the 1st
    report = await run(svc, period, issued)
    [invoice] = report.documents
    assert invoice.kind is Kind.INVOICE and invoice.exact == calls_cost + 30 * PLN
    assert invoice.gross == 500_000 + 30 * PLN  # the calls' line, 0.4972, in grosze: 0.50
    assert [ln["gross"] for ln in invoice.lines] == [500_000, 30 * PLN]
    # 14 days, moved past a weekend or holiday (tests/unit/test_business_days.py)
    due = next_business_day(period.shifted(1).first_day + timedelta(days=14))
    assert invoice.due_date == due
    texts = [(ln["text"], ln["unit"], ln["text_en"]) for ln in invoice.lines]
    assert texts == [
        ("Połączenia: Poland mobile (+4860)", "poł.", "Calls: Poland mobile (+4860)"),
        (f"Opłata: trunk {period}", "szt.", f"Fee: trunk {period}"),
    ]

    async def authorize() -> str:
        grant = await svc.ledger.authorize(
            CallRequest(biz.id, f"c-{uuid.uuid4().hex[:12]}", "0601234567")
        )
        if grant.allowed:
            await svc.ledger.finish(biz.id, grant.call_id, Outcome(False, 0, datetime.now(UTC)))
        return grant.reason

    assert invoice.due_date is not None
    due = datetime.combine(invoice.due_date, datetime.min.time(), ZoneInfo(WARSAW))
    assert (await run(svc, period, due + timedelta(days=14, seconds=-1))).overdue_set == []
    assert await authorize() == "OK"
    blocked = await run(svc, period, due + timedelta(days=14))
    assert blocked.overdue_set == [biz.id]
    assert (await svc.accounts.get(biz.id)).invoice_overdue
    assert await authorize() == "INVOICE_OVERDUE"
    when = (due + timedelta(days=15)).isoformat()
    part = await cli(svc, capsys, "bill", "pay", "--account", biz.id, "--amount", "20",
                     "--reference", "wire-1", "--now", when)  # fmt: skip
    assert part["invoice_overdue"] and await authorize() == "INVOICE_OVERDUE"
    rest = invoice.gross - 20 * PLN
    result = await pay(svc.accounts, biz.id, rest, "wire-2", SETTINGS, due + timedelta(days=15))
    assert not result.invoice_overdue
    assert await authorize() == "OK"  # at once, without a run
    async with svc.pool.acquire() as conn:
        [status] = await invoice_statuses(conn, biz.id)
    assert (status.owed, status.paid, status.outstanding) == (invoice.gross, invoice.gross, 0)
    assert (await svc.accounts.live(biz.id)).balance == 0  # the 0.0028 was booked as rounding
    assert not (await run(svc, period, due + timedelta(days=16))).changed
    listed = await cli(svc, capsys, "bill", "invoices", "--account", biz.id, "--now", when)
    assert [(d["number"], d["status"]) for d in listed] == [(invoice.number, "paid")]


async def test_paying_the_printed_total_of_many_odd_calls_settles_to_the_grosz(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Documents are in grosze: every line, the VAT and the total; the ledger's sub-grosz
    remainder is booked as a rounding entry, so the printed total clears the invoice."""
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=500 * PLN)
    period = await this_period()
    for billsec in (7, 13, 29, 31, 47, 61, 89, 101, 113, 127, 149, 151, 173, 181, 199):
        await call(svc, biz.id, billsec)
    await call(svc, biz.id, 23, to="0221234567")  # a second line: landlines
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, biz.id, "trunk", 29_990_000, date(2026, 1, 1))
    issued = after(period, 1)
    [invoice] = (await run(svc, period, issued)).documents
    printed = await cli(svc, capsys, "bill", "invoices", "--account", biz.id, "--now",
                        issued.isoformat())  # fmt: skip
    [view] = printed
    amounts = [view["gross"], view["net"], view["vat"], *(ln["gross"] for ln in view["lines"])]
    assert all(len(a.partition(".")[2]) == 2 for a in amounts), amounts
    assert sum(Decimal(ln["gross"]) for ln in view["lines"]) == Decimal(view["gross"])
    assert Decimal(view["net"]) + Decimal(view["vat"]) == Decimal(view["gross"])
    # what the ledger holds as owed is the printed total once the rounding is booked
    assert -(await svc.accounts.live(biz.id)).balance == invoice.gross
    assert invoice.gross % GROSZ == 0 and invoice.exact != invoice.gross
    # the bank transfer carries the printed total, in grosze
    paid_at = (issued + timedelta(days=3)).isoformat()
    await cli(svc, capsys, "bill", "pay", "--account", biz.id, "--amount", view["gross"],
              "--reference", "wire-odd", "--now", paid_at)  # fmt: skip
    async with svc.pool.acquire() as conn:
        [status] = await invoice_statuses(conn, biz.id)
    assert status.outstanding == 0
    assert (await svc.accounts.live(biz.id)).balance == 0
    late = after(period, 60)
    assert (await run(svc, period, late)).overdue_set == []
    assert not (await svc.accounts.get(biz.id)).invoice_overdue
    # the rounding is one entry, booked once, and never a line of the next invoice
    rounding = [e for e in await svc.accounts.entries(biz.id) if e.reference
                and e.reference.startswith("rounding/")]  # fmt: skip
    assert [e.amount for e in rounding] == [invoice.exact - invoice.gross]
    nxt = period.shifted(1)
    report = await run(svc, nxt, after(nxt, 1))
    assert [ln["text"] for d in report.documents for ln in d.lines] == [f"Opłata: trunk {nxt}"]


async def test_a_payment_clears_the_block_only_when_no_other_invoice_is_overdue(
    svc: Services, make_account: AccountFactory
) -> None:
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=500 * PLN)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, biz.id, "trunk", 40 * PLN, date(2026, 1, 1))
    sep, octo = Period(2026, 9), Period(2026, 10)
    assert (await run(svc, sep, after(sep))).overdue_set == []
    # on 1 November September's invoice (due 15 October) is 14 days past due
    assert (await run(svc, octo, after(octo))).overdue_set == [biz.id]
    late = after(octo, 40)  # and October's too, by now
    assert not (await run(svc, octo, late)).changed
    first = await pay(svc.accounts, biz.id, 40 * PLN, "pay-sep", SETTINGS, late)
    assert first.invoice_overdue  # October is still unpaid and overdue
    second = await pay(svc.accounts, biz.id, 40 * PLN, "pay-oct", SETTINGS, late)
    assert not second.invoice_overdue
    again = await pay(svc.accounts, biz.id, 40 * PLN, "pay-oct", SETTINGS, late)
    assert not again.created and (await svc.accounts.live(biz.id)).balance == 0


# -- prepaid lifecycle -----------------------------------------------------------------------


@pytest.mark.parametrize("today", EDGES)
async def test_negative_prepaid_loses_foreign_numbers_at_14_days_and_closes_at_3_months(
    svc: Services, retail: Deck, make_account: AccountFactory, today: str
) -> None:
    """`today` the month's run books a fee that takes the balance below zero."""
    t = local(today)
    opened = t - timedelta(days=45)
    a = await make_account(balance=10 * PLN, at=opened)
    ok = await make_account(balance=10 * PLN, at=opened)  # negative too, then topped up
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        for account in (a, ok):
            await subscribe(conn, account.id, "plan", 15 * PLN, opened.date())
    period = Period.of(t, WARSAW).shifted(-1)
    charged = await run(svc, period, t)
    assert sorted(e.account for e in charged.fees) == sorted([a.id, ok.id])
    assert {e.created_at for e in charged.fees} == {t}  # booked at the run's instant
    await pay(svc.accounts, ok.id, 10 * PLN, "rescue", SETTINGS, t + timedelta(hours=1))
    async with svc.pool.acquire() as conn:
        assert await negative_since(svc.accounts, conn, ok.id, t + timedelta(hours=1)) is None
        assert await negative_since(svc.accounts, conn, ok.id, t) == t
        since = await negative_since(svc.accounts, conn, a.id, t)
        assert since == t
        # as of before the fee, the balance was not negative yet
        assert await negative_since(svc.accounts, conn, a.id, t - timedelta(seconds=1)) is None

    async def lifecycle_at(at: datetime, account: str = a.id) -> list[str]:
        return [x.kind for x in (await run(svc, period, at)).lifecycle if x.account == account]

    assert await lifecycle_at(t + timedelta(days=14, seconds=-1)) == []
    assert await lifecycle_at(t + timedelta(days=14)) == [FOREIGN]
    assert await lifecycle_at(t + timedelta(days=20)) == []
    account = await svc.accounts.get(a.id)
    assert set(foreign_prefixes("PL")) <= set(account.blocked_prefixes)
    assert "48" not in account.blocked_prefixes and "4" not in account.blocked_prefixes
    german = await svc.ledger.authorize(CallRequest(a.id, "c-de-1", "+4930123456"))
    polish = await svc.ledger.authorize(CallRequest(a.id, "c-pl-1", "0601234567"))
    assert (german.reason, polish.reason) == ("DESTINATION_BLOCKED", "INSUFFICIENT_CREDIT")
    three_months = add_months(since, 3, WARSAW)
    assert await lifecycle_at(three_months - timedelta(seconds=1)) == []
    assert await lifecycle_at(three_months) == [CLOSED]
    assert (await svc.accounts.get(a.id)).status is AccountStatus.CLOSED
    assert await lifecycle_at(three_months + timedelta(days=30)) == []
    events = await svc.pool.fetch(
        "select kind, effective_at from billing_events where account = $1 order by id", a.id
    )
    assert [(e["kind"], e["effective_at"]) for e in events] == [
        (FOREIGN, t + timedelta(days=14)),
        (CLOSED, three_months),
    ]
    assert (await svc.accounts.get(ok.id)).status is AccountStatus.ACTIVE


@pytest.mark.parametrize("today", EDGES)
async def test_a_top_up_lifts_the_lifecycle_block_and_keeps_the_operators_own(
    svc: Services, retail: Deck, make_account: AccountFactory, today: str
) -> None:
    t = local(today)
    opened = t - timedelta(days=45)
    # the operator blocked the UK (also a foreign prefix) and a domestic range by hand
    own = ("44", "4839")
    a = await make_account(balance=10 * PLN, at=opened, blocked_prefixes=own)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, a.id, "plan", 15 * PLN, opened.date())
    period = Period.of(t, WARSAW).shifted(-1)
    await run(svc, period, t)  # the fee: -5.00 from `t`
    [block] = (await run(svc, period, t + timedelta(days=14))).lifecycle
    assert block.kind == FOREIGN and "44" not in block.detail["blocked_prefixes_added"]

    async def reason(to: str) -> str:
        grant = await svc.ledger.authorize(CallRequest(a.id, f"c-{uuid.uuid4().hex[:12]}", to))
        if grant.allowed:
            outcome = Outcome(False, 0, datetime.now(UTC), "NOANSWER")
            await svc.ledger.finish(a.id, grant.call_id, outcome)
        return grant.reason

    assert await reason("+4930123456") == "DESTINATION_BLOCKED"
    # a top-up that leaves the balance negative lifts nothing
    paid_at = t + timedelta(days=15)
    await pay(svc.accounts, a.id, 2 * PLN, "card-1", SETTINGS, paid_at)
    assert await reason("+4930123456") == "DESTINATION_BLOCKED"
    # one that brings it back to >= 0 lifts the block at once, without a run
    await pay(svc.accounts, a.id, 10 * PLN, "card-2", SETTINGS, paid_at + timedelta(hours=1))
    account = await svc.accounts.get(a.id)
    assert account.blocked_prefixes == tuple(sorted(own))
    assert await reason("+4930123456") == "OK"
    assert await reason("+442079460123") == "DESTINATION_BLOCKED"  # the operator's block stays
    assert await reason("+48391234567") == "DESTINATION_BLOCKED"
    # runs afterwards do nothing more; the lift is recorded once
    assert (await run(svc, period, paid_at + timedelta(days=1))).lifecycle == []
    kinds = await svc.pool.fetch(
        "select kind from billing_events where account = $1 order by id", a.id
    )
    assert [k["kind"] for k in kinds] == [FOREIGN, RESTORED]
    # negative again later: a new stretch, blocked again after another 14 days
    await svc.accounts.add_entry(a.id, "adjustment", -20 * PLN, at=paid_at + timedelta(days=2))
    again = paid_at + timedelta(days=16)
    assert [x.kind for x in (await run(svc, period, again)).lifecycle] == [FOREIGN]


async def test_the_run_lifts_the_block_when_the_balance_recovered_without_a_payment(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    """Money can come back as an adjustment (a refund), which billing does not see at
    once: the next run lifts the block."""
    a = await make_account(balance=10 * PLN, at=T0)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, a.id, "plan", 15 * PLN, T0.date())
    period = Period.of(T0, WARSAW)
    end = after(period)
    await run(svc, period, end)
    assert [x.kind for x in (await run(svc, period, end + timedelta(days=14))).lifecycle] == [
        FOREIGN
    ]
    refund = end + timedelta(days=15)
    await svc.accounts.add_entry(a.id, "adjustment", 6 * PLN, note="refund", at=refund)
    # as of before the refund nothing changes; after it, the block goes
    assert (await run(svc, period, refund - timedelta(seconds=1))).lifecycle == []
    assert [x.kind for x in (await run(svc, period, refund)).lifecycle] == [RESTORED]
    assert (await svc.accounts.get(a.id)).blocked_prefixes == ()


@pytest.mark.parametrize("today", EDGES)
async def test_postpaid_invoice_due_date_and_overdue_block_at_calendar_edges(
    svc: Services, make_account: AccountFactory, today: str
) -> None:
    """`today` the month's run invoices the previous month; 14 days after the due date the
    account is blocked, and paying the invoice lifts the block."""
    t = local(today)
    period = Period.of(t, WARSAW).shifted(-1)
    opened = local(f"{period.first_day.isoformat()}T08:00")
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=100 * PLN, at=opened)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await subscribe(conn, biz.id, "trunk", 30 * PLN, period.first_day)
    first_call = opened + timedelta(days=1, hours=2)
    calls = [cdr(biz.id, first_call + timedelta(hours=i), s) for i, s in enumerate((60, 90, 7))]
    await store_cdrs(svc.settings.pg_dsn, calls)
    [invoice] = (await run(svc, period, t)).documents
    assert invoice.issue_date == t.astimezone(ZoneInfo(WARSAW)).date()
    assert invoice.due_date == DUE_MOVED.get(today, invoice.issue_date + timedelta(days=14))
    assert invoice.exact == sum(c.cost for c in calls) + 30 * PLN  # 30.4972
    assert invoice.gross == 30_500_000  # in grosze, the calls' line rounded half up
    due = datetime.combine(invoice.due_date, datetime.min.time(), ZoneInfo(WARSAW))
    blocked_at = due + timedelta(days=14)
    assert (await run(svc, period, blocked_at - timedelta(seconds=1))).overdue_set == []
    assert (await run(svc, period, blocked_at)).overdue_set == [biz.id]
    assert (await svc.accounts.get(biz.id)).invoice_overdue
    result = await pay(svc.accounts, biz.id, invoice.gross, "wire", SETTINGS, blocked_at)
    assert not result.invoice_overdue and result.entry.created_at == blocked_at


# -- re-rating -------------------------------------------------------------------------------


def cheaper_mobile(deck: Deck) -> Deck:
    """retail with Polish mobiles at 0.10 PLN/min instead of 0.19 (per second)."""
    rows = tuple(
        replace(r, rate=100_000) if r.prefix in ("4850", "4851", "4860") else r for r in deck.rows
    )
    return replace(deck, rows=rows, sha256=f"cheaper-{uuid.uuid4().hex}")


async def test_rerating_books_one_exact_adjustment_once(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await make_account(balance=10 * PLN)
    period = await this_period()
    ids = [await call(svc, a.id, billsec) for billsec in (60, 45, 7)]
    await call(svc, a.id, 20, to="0221234567")  # a landline: the change does not touch it
    now = after(period, 2)
    v2 = await install_deck(svc, cheaper_mobile(retail))
    balance = (await svc.accounts.live(a.id)).balance
    preview = await rerate(svc.accounts, a.id, period, "retail", v2.version, now=now)
    by_call = {ln.call_id: ln for ln in preview.lines}
    # 0.19/min -> 0.10/min, per second, each call rounded up to 4 decimals
    assert [(by_call[i].old_charge, by_call[i].new_charge) for i in ids] == [
        (190_000, 100_000),  # 60 s
        (142_500, 75_000),  # 45 s
        (22_200, 11_700),  # 7 s: 0.02216.. -> 0.0222, 0.01166.. -> 0.0117
    ]
    assert preview.total == -168_000 and len(preview.lines) == 4
    assert not preview.applied and (await svc.accounts.live(a.id)).balance == balance
    entries = len(await svc.accounts.entries(a.id))
    out = await cli(svc, capsys, "cdr", "rerate", "--account", a.id, "--period", str(period),
                    "--deck", f"retail:{v2.version}", "--apply",
                    "--now", now.isoformat())  # fmt: skip
    assert out["applied"] and out["total_diff"] == "-0.1680" and out["changed"] == 3
    assert out["entry"]["kind"] == "adjustment" and out["entry"]["amount"] == "0.1680"
    assert out["entry"]["reference"] == f"rerate/{period}/retail:{v2.version}"
    assert (await svc.accounts.live(a.id)).balance == balance + 168_000
    again = await rerate(svc.accounts, a.id, period, "retail", v2.version, now=now, apply=True)
    assert again.already_applied and not again.applied and again.total == 0
    assert len(await svc.accounts.entries(a.id)) == entries + 1
    assert (await svc.accounts.live(a.id)).balance == balance + 168_000
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        shown = await listing(conn, await svc.accounts.get(a.id), period)
    assert {c.cdr.call_id: c.charge for c in shown.calls if c.cdr.call_id in ids} == {
        ids[0]: 100_000, ids[1]: 75_000, ids[2]: 11_700
    }  # fmt: skip
    # back to version 1: from the re-rated prices, exactly the opposite
    back = await rerate(svc.accounts, a.id, period, "retail", 1, now=now, apply=True)
    assert back.total == 168_000 and (await svc.accounts.live(a.id)).balance == balance


async def test_rerating_an_invoiced_postpaid_month_issues_a_credit_note(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=100 * PLN)
    period = await this_period()
    await call(svc, biz.id, 120)
    [invoice] = (await run(svc, period, after(period))).documents
    v2 = await install_deck(svc, cheaper_mobile(retail))
    result = await rerate(
        svc.accounts, biz.id, period, "retail", v2.version, apply=True, now=after(period, 2)
    )
    note = result.credit_note
    assert note is not None and note.kind is Kind.CREDIT_NOTE
    assert (note.gross, note.corrects, note.number) == (-180_000, invoice.id, "CN/"
        f"{period.shifted(1).year}/{period.shifted(1).month:02d}/000001")  # fmt: skip
    assert note.net + note.vat == note.gross and note.vat == -30_000  # 0.18 x 23/123 = 0.0336..
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        [status] = await invoice_statuses(conn, biz.id)
    assert status.owed == invoice.gross - 180_000
    await pay(svc.accounts, biz.id, status.owed, "wire", SETTINGS, after(period, 3))
    async with svc.pool.acquire() as conn:
        [status] = await invoice_statuses(conn, biz.id)
    assert status.outstanding == 0
    assert (await svc.accounts.live(biz.id)).balance == 0


async def test_cli_reports_bad_input_as_exit_2_errors(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from tollgate.cli import CliError

    a = await make_account()
    for argv in (
        ("bill", "run", "--period", "2026-13"),
        ("bill", "run", "--now", "yesterday"),
        ("bill", "run", "--now", "2026-11-20T12:00"),  # no zone: refused, not guessed
        ("bill", "listing", "--account", a.id, "--period", "11/2026"),
        ("bill", "pay", "--account", a.id, "--amount", "-5", "--reference", "r"),
        ("cdr", "rerate", "--account", a.id, "--period", "2026-11", "--deck", "retail:x"),
    ):
        with pytest.raises(CliError) as err:
            await cli(svc, capsys, *argv)
        assert err.value.code == 2


async def test_money_entered_as_an_account_topup_is_billed_at_once(
    svc: Services, retail: Deck, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tollgate account topup` (a top-up or a payment) does what `bill pay` does, at once:
    a prepaid top-up gets its invoice; a postpaid payment lifts a settled overdue block."""
    from tollgate.cli import build_parser

    async def tollgate(*argv: str) -> Any:
        args = build_parser().parse_args(argv)
        capsys.readouterr()
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    pre = await make_account()
    topped = await tollgate("account", "topup", pre.id, "12.30", "--reference", "card-7")
    assert topped["invoice"] and topped["invoice"].startswith("INV/")
    again = await tollgate("account", "topup", pre.id, "12.30", "--reference", "card-7")
    assert not again["created"] and again["invoice"] == topped["invoice"]

    biz = await make_account(kind=AccountKind.POSTPAID, credit_limit=100 * PLN)
    period = await this_period()
    await call(svc, biz.id, 60)
    [invoice] = (await run(svc, period, after(period, 5 / 1440))).documents
    assert invoice.due_date is not None
    due = datetime.combine(invoice.due_date, datetime.min.time(), ZoneInfo(WARSAW))
    assert (await run(svc, period, due + timedelta(days=14))).overdue_set == [biz.id]
    paid = await tollgate("account", "topup", biz.id, format_micro(invoice.gross), "--kind",
                          "payment", "--reference", "wire-9")  # fmt: skip
    assert paid["created"] and not (await svc.accounts.get(biz.id)).invoice_overdue
