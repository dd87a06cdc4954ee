"""A plan's minute bundle on real calls: SIPp phone -> Asterisk -> SIPp carrier, authorized
by `tollgate serve`. A call the bundle covers costs nothing and the bundle drops; the next
call overruns it, pays the overage and is cut by Asterisk when bundle and credit run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rating.plan_store import PlanStore
from rating.plans import Allowance, Plan
from tests.e2e.conftest import E2E

MOBILE = "601234567"  # retail deck: 0.19 PLN/min, billed per second


async def test_a_covered_call_is_free_and_the_next_pays_its_overage(e2e: E2E) -> None:
    assert e2e.svc.pool is not None
    await e2e.account("phone-a", balance=19_000)  # 0.019 PLN: 6 s of overage
    plans = PlanStore(e2e.svc.accounts)
    now = datetime.now(UTC)
    await plans.create(Plan("e2e-mini", 0, "PLN", (Allowance(8, ("mobile",), ("48",)),)),
                       at=now, actor="e2e")  # fmt: skip
    await plans.assign("e2e-a", "e2e-mini", now - timedelta(days=1), at=now, actor="e2e")

    first = await e2e.call(MOBILE, "phone-a", hangup_after_ms=3000)
    assert first.status == 200 and first.answered and not first.bye_from_asterisk
    [cdr] = await e2e.cdrs("phone-a", 1)
    assert cdr["cost"] == "0" and int(cdr["rated_cost"]) > 0
    used = await e2e.svc.pool.fetchval(
        "select bundle_seconds from cdrs where call_id = $1", cdr["call_id"]
    )
    assert used == int(cdr["billsec"]) and 2 <= used <= 4
    assert (await e2e.svc.accounts.live("e2e-a")).balance == 19_000

    # the rest of the bundle and then 6 s of overage: Asterisk cuts the call
    second = await e2e.call(MOBILE, "phone-a")
    assert second.status == 200 and second.answered and second.bye_from_asterisk
    cdrs = await e2e.cdrs("phone-a", 2)
    row = await e2e.svc.pool.fetchrow(
        "select granted_s, billsec, cost, bundle_seconds from cdrs where call_id = $1",
        cdrs[1]["call_id"],
    )
    assert row is not None
    assert row["granted_s"] == 8 - used + 6 and row["bundle_seconds"] == 8 - used
    assert 0 < row["cost"] <= 19_000
    live = await e2e.svc.accounts.live("e2e-a")
    assert live.balance == 19_000 - row["cost"] and live.balance >= 0 and live.reserved == 0
    assert e2e.new_carrier_calls() == ["+48601234567", "+48601234567"]
