"""Plans' minute bundles in the ledger, on the real Redis and PostgreSQL: granted from the
bundle first, overage from the balance at the deck's rates, no overrun by parallel calls,
months in the account's zone, replays and the sweeper."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rating.deck import Deck
from rating.ledger import CallRequest, Grant, Ledger, LedgerSettings, Outcome
from rating.plan_store import PlanStore
from rating.plans import Allowance, Plan, PlanConflict, PlanError
from runtime.services import Services
from tests.conftest import AccountFactory

PLN = 1_000_000
# Deck versions take effect when imported (now): every pinned instant lies after that.
JAN = datetime.fromisoformat("2027-01-01T00:00:00+01:00")
MID_JAN = datetime.fromisoformat("2027-01-14T10:00:00+01:00")
MOBILE = Allowance(300, ("mobile",), ("48",), "PL mobile 5 min")


def cid() -> str:
    return f"b-{uuid.uuid4().hex[:12]}"


async def on_plan(
    svc: Services, account: str, *allowances: Allowance, start: datetime = JAN, fee: int = 0
) -> PlanStore:
    plans = PlanStore(svc.accounts)
    name = f"p-{uuid.uuid4().hex[:8]}"
    await plans.create(Plan(name, fee, "PLN", allowances or (MOBILE,)), at=start, actor="t")
    await plans.assign(account, name, start, at=start, actor="t")
    return plans


async def grant(
    svc: Services, account: str, to: str, at: datetime, call: str | None = None, **kw: Any
) -> Grant:
    return await svc.ledger.authorize(CallRequest(account, call or cid(), to, at=at, **kw))


async def end(svc: Services, account: str, call: str, billsec: int) -> int:
    done = await svc.ledger.finish(
        account, call, Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER", "16")
    )
    return done.cost


async def usage(svc: Services, account: str, at: datetime) -> list[tuple[int, int, int]]:
    found = await PlanStore(svc.accounts).usage(account, at)
    return [(u["seconds"], u["consumed"], u["reserved"]) for u in found]


async def test_a_covered_call_is_free_and_the_bundle_drops(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()  # no money at all: the bundle alone grants
    await on_plan(svc, a.id)
    g = await grant(svc, a.id, "601234567", MID_JAN, cap_s=120)
    assert (g.reason, g.max_seconds, g.reserved) == ("OK", 120, 0)
    assert await usage(svc, a.id, MID_JAN) == [(300, 0, 120)]
    assert await end(svc, a.id, g.call_id, 100) == 0
    assert await usage(svc, a.id, MID_JAN) == [(300, 100, 0)]
    record = await svc.ledger.call(a.id, g.call_id)
    assert (record["bundle_seconds"], record["cost"]) == ("100", "0")
    assert record["rated_cost"] == "316700"  # the deck's price, paid by the bundle
    # an uncovered destination (Germany) still needs money
    assert (await grant(svc, a.id, "+4930123456", MID_JAN)).reason == "INSUFFICIENT_CREDIT"


async def test_overage_beyond_the_bundle_is_priced_at_the_deck(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1 * PLN)
    await on_plan(svc, a.id)
    g = await grant(svc, a.id, "601234567", MID_JAN)
    # 300 s free (worth 0.95), then 1.00 buys 315 s more at 0.19/min: 615 s in all
    assert (g.max_seconds, g.reserved) == (615, 997_500)
    assert await usage(svc, a.id, MID_JAN) == [(300, 0, 300)]
    # 400 s: the deck's price 1.2667 less the 300 bundle seconds' 0.9500
    assert await end(svc, a.id, g.call_id, 400) == 316_700
    live = await svc.accounts.live(a.id)
    assert (live.balance, live.reserved) == (PLN - 316_700, 0)
    assert await usage(svc, a.id, MID_JAN) == [(300, 300, 0)]
    # the bundle is spent: the next call is overage from the first second
    g2 = await grant(svc, a.id, "601234567", MID_JAN)
    assert g2.reserved > 0 and await end(svc, a.id, g2.call_id, 60) == 190_000


async def test_the_bundle_follows_the_decks_increments(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=1 * PLN)
    await on_plan(svc, a.id, Allowance(150, (), ("49",), "DE"))
    g = await grant(svc, a.id, "+4930123456", MID_JAN)  # 0.25/min in 60 s increments
    assert await end(svc, a.id, g.call_id, 61) == 0  # 120 billable seconds from the bundle
    assert await usage(svc, a.id, MID_JAN) == [(150, 120, 0)]
    g = await grant(svc, a.id, "+4930123456", MID_JAN)
    # 30 s left: a 90 s call bills 120 s; the bundle pays the price of its 30 s (one
    # increment, 0.25), the balance the second increment
    assert await end(svc, a.id, g.call_id, 90) == 250_000
    assert await usage(svc, a.id, MID_JAN) == [(150, 150, 0)]


async def test_parallel_calls_never_overrun_the_bundle(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    await on_plan(svc, a.id)
    grants = await asyncio.gather(
        *(grant(svc, a.id, "601234567", MID_JAN, cap_s=60) for _ in range(12))
    )
    allowed = [g for g in grants if g.allowed]
    assert len(allowed) == 5 and all(g.max_seconds == 60 for g in allowed)
    assert {g.reason for g in grants if not g.allowed} == {"INSUFFICIENT_CREDIT"}
    assert await usage(svc, a.id, MID_JAN) == [(300, 0, 300)]
    for g in allowed:
        assert await end(svc, a.id, g.call_id, 70) == 0  # overrun: capped at the grant
    assert await usage(svc, a.id, MID_JAN) == [(300, 300, 0)]
    assert (await svc.accounts.live(a.id)).balance == 0


async def test_each_month_has_its_own_bundle_in_the_accounts_zone(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()  # Europe/Warsaw
    await on_plan(svc, a.id)
    last = datetime.fromisoformat("2027-01-31T23:59:00+01:00")
    first = datetime.fromisoformat("2027-02-01T00:01:00+01:00")  # still January in UTC
    g = await grant(svc, a.id, "601234567", last, cap_s=300)
    assert g.max_seconds == 300
    assert not (await grant(svc, a.id, "601234567", last, cap_s=60)).allowed
    # a call starting in February draws on February's bundle, even while January's runs
    g2 = await grant(svc, a.id, "601234567", first, cap_s=300)
    assert (g2.max_seconds, g2.reserved) == (300, 0)
    await end(svc, a.id, g.call_id, 200)
    await end(svc, a.id, g2.call_id, 10)
    assert await usage(svc, a.id, last) == [(300, 200, 0)]
    assert await usage(svc, a.id, first) == [(300, 10, 0)]


async def test_a_plan_started_mid_month_gets_its_allowance_pro_rata(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    start = datetime.fromisoformat("2027-04-16T09:00:00+02:00")  # 15 of April's 30 days
    await on_plan(svc, a.id, start=start)
    assert await usage(svc, a.id, start) == [(150, 0, 0)]
    assert (await grant(svc, a.id, "601234567", start)).max_seconds == 150
    before = start - timedelta(minutes=1)
    assert (await grant(svc, a.id, "601234567", before)).reason == "INSUFFICIENT_CREDIT"
    may = datetime.fromisoformat("2027-05-01T00:00:00+02:00")
    assert (await grant(svc, a.id, "601234567", may)).max_seconds == 300


async def test_replays_move_the_bundle_once(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    await on_plan(svc, a.id)
    call = cid()
    first = await grant(svc, a.id, "601234567", MID_JAN, call, cap_s=100)
    again = await grant(svc, a.id, "601234567", MID_JAN, call, cap_s=100)
    assert again.replay and again.max_seconds == first.max_seconds == 100
    assert await usage(svc, a.id, MID_JAN) == [(300, 0, 100)]
    await end(svc, a.id, call, 50)
    await end(svc, a.id, call, 99)
    assert await usage(svc, a.id, MID_JAN) == [(300, 50, 0)]


async def test_the_sweeper_consumes_an_answered_calls_bundle_and_a_late_finish_corrects(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    await on_plan(svc, a.id)
    quick = Ledger(svc.redis, svc.settings.keyspace, svc.ledger.decks,
                   LedgerSettings(ring_window_s=0, grace_s=0, switch_host="t"))  # fmt: skip
    call = cid()
    g = await quick.authorize(CallRequest(a.id, call, "601234567", cap_s=2, at=MID_JAN))
    assert g.max_seconds == 2
    await quick.answer(a.id, call)
    await asyncio.sleep(2.2)
    assert await quick.sweep() == 1
    assert await usage(svc, a.id, MID_JAN) == [(300, 2, 0)]
    unanswered = cid()
    await quick.authorize(CallRequest(a.id, unanswered, "601234567", cap_s=1, at=MID_JAN))
    await asyncio.sleep(1.2)
    assert await quick.sweep() == 1  # never answered: released
    assert await usage(svc, a.id, MID_JAN) == [(300, 2, 0)]
    done = await quick.finish(a.id, call, Outcome(True, 1, datetime.now(UTC), "ANSWER"))
    assert done.cost == 0
    assert await usage(svc, a.id, MID_JAN) == [(300, 1, 0)]


async def test_emergency_and_inbound_calls_leave_the_bundle_alone(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    await on_plan(svc, a.id, Allowance(300))
    g = await grant(svc, a.id, "112", MID_JAN)
    assert g.reason == "EMERGENCY"
    await end(svc, a.id, g.call_id, 30)
    assert await usage(svc, a.id, MID_JAN) == [(300, 0, 0)]


async def test_assignments_are_checked_and_never_overlap(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account()
    plans = await on_plan(svc, a.id)
    name = (await plans.assignments(a.id))[0].plan
    with pytest.raises(PlanConflict):
        await plans.assign(a.id, name, MID_JAN, at=MID_JAN, actor="t")
    with pytest.raises(PlanError) as bad:
        await plans.unassign(a.id, JAN - timedelta(days=1), at=MID_JAN, actor="t")
    assert bad.value.field == "end"
    await plans.unassign(a.id, MID_JAN, at=MID_JAN, actor="t")
    assert (await grant(svc, a.id, "601234567", MID_JAN)).reason == "INSUFFICIENT_CREDIT"
    assert (await grant(svc, a.id, "601234567", MID_JAN - timedelta(hours=1))).allowed
    eur = Plan("euro", 0, "EUR", (MOBILE,))
    await plans.create(eur, at=MID_JAN, actor="t")
    with pytest.raises(PlanError) as bad:
        await plans.assign(a.id, "euro", MID_JAN, at=MID_JAN, actor="t")
    assert bad.value.field == "plan"
    with pytest.raises(PlanError) as bad:
        Plan("x", 0, "PLN", (Allowance(60, ("emergency",)),)).checked()
    assert bad.value.field == "allowances[0].classes"


async def test_a_lost_account_gets_its_bundles_and_usage_back(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    from rating.repair import repair_all

    a = await make_account()
    await on_plan(svc, a.id)
    g = await grant(svc, a.id, "601234567", MID_JAN, cap_s=100)
    await end(svc, a.id, g.call_id, 80)
    async with svc.pool.acquire() as conn:  # the CDR as the writer stores it
        await conn.execute("select cdr_ensure_month($1)", MID_JAN)
        await conn.execute(
            "insert into cdrs (call_id, started_at, account, state, ended_at, switch, bundle,"
            " bundle_seconds, stream_id)"
            " values ($1, $2, $3, 'finished', $2, 'test', $4, 80, '1-1')",
            g.call_id, MID_JAN, a.id, (await svc.ledger.call(a.id, g.call_id))["bundle"],
        )  # fmt: skip
    await svc.redis.delete(svc.settings.keyspace.account(a.id))
    await repair_all(svc.accounts)
    assert await usage(svc, a.id, MID_JAN) == [(300, 80, 0)]
    assert (await grant(svc, a.id, "601234567", MID_JAN)).max_seconds == 220


async def test_plan_fees_in_advance_pro_rata_once_with_a_notice(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    from billing.period import Period
    from billing.run import bill_run
    from billing.settings import BillingSettings
    from notify.notices import list_notices
    from notify.plan_fees import scan
    from notify.settings import NotifySettings

    assert svc.pool is not None
    opened = datetime.fromisoformat("2026-11-02T10:00:00+01:00")
    a = await make_account(balance=100 * PLN, at=opened)
    start = datetime.fromisoformat("2026-11-16T09:00:00+01:00")  # 15 of November's 30 days
    await on_plan(svc, a.id, start=start, fee=30 * PLN)
    run_at = datetime.fromisoformat("2026-12-01T03:00:00+01:00")
    report = await bill_run(svc.accounts, Period(2026, 11), BillingSettings(), run_at)
    fees = sorted((e.reference or "", e.amount, e.note) for e in report.fees)
    assignment = (await PlanStore(svc.accounts).assignments(a.id))[0].id
    assert [(r, amount) for r, amount, _ in fees] == [
        (f"plan/2026-11/{assignment}", -15 * PLN),
        (f"plan/2026-12/{assignment}", -30 * PLN),
    ]
    assert fees[0][2].endswith("(15/30 days)")
    again = await bill_run(svc.accounts, Period(2026, 11), BillingSettings(), run_at)
    assert again.fees == []
    assert (await svc.accounts.live(a.id)).balance == 55 * PLN
    settings = NotifySettings()
    assert await scan(svc.pool, settings, run_at) == 2
    assert await scan(svc.pool, settings, run_at) == 0
    async with svc.pool.acquire() as conn:
        notices = await list_notices(conn, a.id)
    assert {n.kind for n in notices} == {"plan_fee"}
    assert any("30,00 PLN" in n.body and "2026-12" in n.body for n in notices)
    december = next(n.data for n in notices if n.data["period"] == "2026-12")
    assert (december["account"], december["currency"], december["amount_micro"]) == (
        a.id, "PLN", 30 * PLN,
    )  # fmt: skip
    assert december["plan"].startswith("p-")
