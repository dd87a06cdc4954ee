"""A repeat `bill run` leaves alone the accounts a complete run left with nothing to do
(billing_marks), and bills again every account where something changed or fell due: a
top-up, a subscription, a settings change, a late CDR, a period's end or an invoice's due
date passing with no change at all. A change made while an account is billed is never
recorded clean."""

from __future__ import annotations

from datetime import date, timedelta

from billing.fees import subscribe
from billing.marks import Waiting, page_with_marks, settings_digest, write_marks
from billing.period import Period
from billing.run import bill_run
from billing.settings import BillingSettings
from rating.accounts import AccountKind
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_billing import cdr, local, store_cdrs

PLN = 1_000_000
SETTINGS = BillingSettings()
PERIOD = Period(2026, 10)
OPENED = local("2026-09-20T10:00")
RUN = local("2026-11-02T07:00")  # the month's run


async def test_a_repeat_leaves_alone_what_a_run_finished_and_bills_what_changed(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    pre = await make_account(id="pre", balance=20 * PLN, at=OPENED)
    idle = await make_account(id="idle", balance=5 * PLN, at=OPENED)
    biz = await make_account(id="biz", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=OPENED)
    async with svc.pool.acquire() as conn:
        await subscribe(conn, pre.id, "plan", 15 * PLN, date(2026, 1, 1))
        await subscribe(conn, biz.id, "trunk", 29_990_000, date(2026, 1, 1))
    first = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)
    assert first.failed == {} and {d.account for d in first.documents} == {"pre", "idle", "biz"}
    again = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=1))
    assert not again.changed and again.skipped == 3
    # a top-up: its invoice
    await svc.accounts.add_entry(pre.id, "topup", 10 * PLN, "card-9", at=RUN + timedelta(hours=2))
    # a subscription taken after the run: the period's fee
    async with svc.pool.acquire() as conn:
        await subscribe(conn, idle.id, "extra", 2 * PLN, date(2026, 10, 1))
    # a flag set by hand with no overdue invoice: the run clears it
    await svc.accounts.update(biz.id, invoice_overdue=True, at=RUN + timedelta(hours=2))
    later = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=3))
    assert later.failed == {} and later.skipped == 0
    assert [(d.account, d.kind.value) for d in later.documents] == [("pre", "topup_invoice")]
    assert [(e.account, e.reference) for e in later.fees] == [("idle", "fee/2026-10/extra")]
    assert later.overdue_cleared == ["biz"]
    # once billed, left alone again (the flag was written by the store, not on the run's
    # connection: one more pass for that account, which finds nothing to do)
    once = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=4))
    assert once.skipped == 2 and not once.changed
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=4))).skipped == 3
    # another period or other settings are not this one
    other = BillingSettings(overdue_block_days=20)
    assert (await bill_run(svc.accounts, PERIOD, other, RUN + timedelta(hours=4))).skipped == 0


async def test_time_alone_makes_work_due_the_periods_end_and_an_invoices_due_date(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    biz = await make_account(id="biz", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=OPENED)
    async with svc.pool.acquire() as conn:
        await subscribe(conn, biz.id, "trunk", 29_990_000, date(2026, 1, 1))
    before_end = local("2026-10-30T12:00")
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, before_end)).not_over == ["biz"]
    still = await bill_run(svc.accounts, PERIOD, SETTINGS, before_end + timedelta(hours=1))
    assert still.skipped == 1 and still.not_over == ["biz"] and not still.changed
    # the period ends: the fee and the invoice, with no change made
    over = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)
    assert [e.reference for e in over.fees] == ["fee/2026-10/trunk"]
    assert [d.account for d in over.documents] == ["biz"]
    due = over.documents[0].due_date
    assert due is not None
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(days=1))).skipped == 1
    # the unpaid invoice turns overdue at its due date + the block days: nothing changed
    overdue_day = local(f"{due + timedelta(days=SETTINGS.overdue_block_days)}T00:30")
    late = await bill_run(svc.accounts, PERIOD, SETTINGS, overdue_day)
    assert late.overdue_set == ["biz"]


async def test_a_late_cdr_gives_a_postpaid_account_with_nothing_invoiced_its_invoice(
    svc: Services, make_account: AccountFactory
) -> None:
    idle = await make_account(
        id="idle", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=OPENED
    )
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)).documents == []
    # no trigger watches CDRs: an account with nothing invoiced is never left alone
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)).skipped == 0
    await store_cdrs(svc.settings.pg_dsn, [cdr(idle.id, local("2026-10-31T23:00"), 61)])
    late = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=1))
    assert [d.account for d in late.documents] == ["idle"]
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN + timedelta(hours=2))).skipped == 1


async def test_a_negative_prepaid_account_is_billed_every_run(
    svc: Services, make_account: AccountFactory
) -> None:
    neg = await make_account(id="neg", balance=PLN, at=OPENED)
    await svc.accounts.add_entry(
        neg.id, "adjustment", -3 * PLN, "fix-1", at=local("2026-10-08T10:00")
    )
    await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)
    assert (await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)).skipped == 0


async def test_a_change_while_an_account_is_billed_is_not_recorded_clean(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    a = await make_account(id="a", balance=5 * PLN, at=OPENED)
    digest = settings_digest(SETTINGS)
    (brief,) = await page_with_marks(svc.pool, "", 10, None, PERIOD, digest, RUN)
    # what the run read is already stale: a subscription came in meanwhile
    async with svc.pool.acquire() as conn:
        await subscribe(conn, a.id, "plan", 15 * PLN, date(2026, 1, 1))
        await write_marks(conn, {a.id: brief.mark}, Waiting(RUN), PERIOD, digest)
    (after,) = await page_with_marks(svc.pool, "", 10, None, PERIOD, digest, RUN)
    assert after.mark is not None and not after.mark.clean
    run = await bill_run(svc.accounts, PERIOD, SETTINGS, RUN)
    assert [e.reference for e in run.fees] == ["fee/2026-10/plan"]
