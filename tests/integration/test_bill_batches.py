"""`bill run` as set operations: a batch of accounts billed at once gives what billing each
account alone gives (documents, entries, lifecycle, flags, balances), numbers stay gapless
across batches and shards, and the negative-balance mark is only a hint."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billing.fees import subscribe
from billing.period import Period
from billing.prepaid import FOREIGN
from billing.report import RunReport
from billing.run import bill_account, bill_run
from billing.settings import BillingSettings
from rating.accounts import AccountKind
from rating.plan_store import PlanStore
from rating.plans import Allowance, Plan, PlanConflict
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_billing import cdr, local, store_cdrs

PLN = 1_000_000
SETTINGS = BillingSettings(foreign_block=True)
PERIOD = Period(2026, 10)
OPENED = local("2026-09-20T10:00")
# the month's run, a day after the foreign block is due, and after the invoice is overdue
INSTANTS = (local("2026-11-02T07:00"), local("2026-11-17T07:00"), local("2026-12-01T07:00"))


async def population(svc: Services, make_account: AccountFactory, tag: str) -> list[str]:
    """Prepaid and postpaid accounts with top-ups, fees, calls and adjustments that need
    rounding, a negative stretch, an overdue invoice; ids end in `tag`."""
    assert svc.pool is not None
    goes_negative = await make_account(id=f"neg-{tag}", balance=10 * PLN, at=OPENED)
    odd = await make_account(id=f"odd-{tag}", balance=12_345_678, at=OPENED)
    await svc.accounts.add_entry(odd.id, "topup", 7_777_777, "card-1", at=local("2026-10-05T09:00"))
    biz = await make_account(
        id=f"biz-{tag}", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=OPENED
    )
    idle = await make_account(
        id=f"idle-{tag}", kind=AccountKind.POSTPAID, credit_limit=500 * PLN, at=OPENED
    )
    async with svc.pool.acquire() as conn:
        await subscribe(conn, goes_negative.id, "plan", 15 * PLN, date(2026, 1, 1))
        await subscribe(conn, biz.id, "trunk", 29_990_000, date(2026, 1, 1))
    await svc.accounts.add_entry(
        biz.id, "adjustment", -1_234_567, note="port-in", at=local("2026-10-10T10:00")
    )
    # plans: fees in advance for prepaid (pro-rata from a start mid-month), in arrears after
    plans = PlanStore(svc.accounts)
    bundle = (Allowance(18_000, ("mobile",), ("48",)),)
    for plan, fee in (("mini", 19_990_000), ("max", 49_000_000)):
        with contextlib.suppress(PlanConflict):  # the populations share the catalogue
            await plans.create(Plan(plan, fee, "PLN", bundle), at=OPENED, actor="t")
    for account, plan, start in (
        (goes_negative.id, "mini", local("2026-09-01T00:00")),
        (odd.id, "max", local("2026-10-16T15:00")),
        (biz.id, "mini", local("2026-10-01T00:00")),
    ):
        await plans.assign(account, plan, start, at=OPENED, actor="t")
    day = local("2026-10-12T12:00")
    calls = [
        cdr(biz.id, day + timedelta(hours=i), s, call_id=f"c-{tag}-{i}")
        for i, s in enumerate((7, 13, 61, 89, 151))
    ]
    calls.append(
        cdr(biz.id, day + timedelta(hours=9), 23, call_id=f"c-{tag}-land", e164="+48221234567",
            prefix="4822", rate_name="Poland Warsaw", cost=34_500, rated_cost=34_500)
    )  # fmt: skip
    await store_cdrs(svc.settings.pg_dsn, calls)
    return [goes_negative.id, odd.id, biz.id, idle.id]


async def outcome(svc: Services, account: str, tag: str) -> dict[str, Any]:
    """What billing left for `account`, with its id (and document numbers) taken out."""
    assert svc.pool is not None

    def plain(text: str | None) -> str | None:
        if text is None:
            return None
        # a plan's fee names its assignment, whose id differs between the populations
        return re.sub(r"^plan/([0-9-]+)/[0-9]+$", r"plan/\1/N", text.replace(f"-{tag}", "-X"))

    docs = await svc.pool.fetch(
        "select kind, lines, net, vat, gross, exact, sale_date, issue_date, due_date, period,"
        " payment_method from billing_documents where account = $1 order by id",
        account,
    )
    entries = await svc.pool.fetch(
        "select seq, kind, amount, reference, note, created_at from ledger_entries"
        " where account = $1 order by seq",
        account,
    )
    events = await svc.pool.fetch(
        "select kind, negative_since, effective_at, detail from billing_events"
        " where account = $1 order by id",
        account,
    )
    state = await svc.pool.fetchrow(
        "select status, invoice_overdue, blocked_prefixes, ledger_seq from accounts where id = $1",
        account,
    )
    assert state is not None
    return {
        "documents": [dict(d) for d in docs],
        "entries": [
            (
                e["seq"],
                e["kind"],
                e["amount"],
                plain(e["reference"]),
                "" if (e["reference"] or "").startswith("rounding/") else e["note"],
                e["created_at"],
            )
            for e in entries
        ],
        "events": [dict(e) for e in events],
        "state": dict(state),
        "balance": (await svc.accounts.live(account)).balance,
    }


async def test_a_batch_bills_as_each_account_billed_alone(
    svc: Services, make_account: AccountFactory
) -> None:
    alone = await population(svc, make_account, "a")
    batched = await population(svc, make_account, "b")
    assert svc.pool is not None
    for now in INSTANTS:
        report = RunReport(PERIOD, now)
        async with svc.pool.acquire() as conn:
            for account in alone:  # first, so the run below finds them billed
                await bill_account(svc.accounts, conn, await svc.accounts.get(account), report,
                                   SETTINGS)  # fmt: skip
        ran = await bill_run(svc.accounts, PERIOD, SETTINGS, now, batch=3)
        assert ran.failed == {} and report.failed == {}
        assert {d.account for d in ran.documents} <= set(batched)
        assert {x.account for x in ran.lifecycle} <= set(batched)
    for a, b in zip(alone, batched, strict=True):
        assert await outcome(svc, a, "a") == await outcome(svc, b, "b"), a
    # the scenario did reach every step: fees, invoices, roundings, the lifecycle, overdue
    got = await outcome(svc, "biz-b", "b")
    assert [d["kind"] for d in got["documents"]] == ["invoice"]
    assert got["state"]["invoice_overdue"] is True
    assert any(e[3] == "rounding/invoice/biz-X/2026-10" for e in got["entries"])
    assert [e["kind"] for e in (await outcome(svc, "neg-b", "b"))["events"]] == [FOREIGN]
    odd = await outcome(svc, "odd-b", "b")
    assert [d["kind"] for d in odd["documents"]] == ["topup_invoice", "topup_invoice"]
    assert (await outcome(svc, "idle-b", "b"))["documents"] == []
    fees = {(e[3], e[2]) for e in odd["entries"] if (e[3] or "").startswith("plan/")}
    # October from the 16th: 16 of 31 days (rounded down), November in full, in advance
    assert fees == {("plan/2026-10/N", -(49_000_000 * 16 // 31)), ("plan/2026-11/N", -49_000_000)}
    neg = (await outcome(svc, "neg-b", "b"))["entries"]
    assert [e[3] for e in neg if (e[3] or "").startswith("plan/")] == [
        "plan/2026-10/N", "plan/2026-11/N"
    ]
    assert [(e[3], e[2]) for e in got["entries"] if (e[3] or "").startswith("plan/")] == [
        ("plan/2026-10/N", -19_990_000)  # postpaid: October's, with October's invoice
    ]
    # and nothing is left to do
    again = await bill_run(svc.accounts, PERIOD, SETTINGS, INSTANTS[-1], batch=2)
    assert not again.changed and again.repaired == []


async def test_batches_and_shards_number_documents_without_gaps(
    svc: Services, make_account: AccountFactory
) -> None:
    ids = [(await make_account(id=f"acct-{n:02d}", balance=PLN, at=OPENED)).id for n in range(9)]
    now = INSTANTS[0]
    first = await bill_run(svc.accounts, PERIOD, SETTINGS, now, batch=2, shard=(0, 2))
    second = await bill_run(svc.accounts, PERIOD, SETTINGS, now, batch=2, shard=(1, 2))
    mine = {d.account for d in first.documents}
    theirs = {d.account for d in second.documents}
    assert mine and theirs and not mine & theirs and mine | theirs == set(ids)
    # within a run, numbers follow the accounts' order
    assert [d.account for d in first.documents] == sorted(mine)
    numbers = sorted(d.number for d in [*first.documents, *second.documents])
    assert numbers == [f"INV/2026/11/{n:06d}" for n in range(1, 10)]
    assert not (await bill_run(svc.accounts, PERIOD, SETTINGS, now)).changed


async def test_a_wrong_negative_mark_does_not_change_when_the_stretch_began(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN, at=OPENED)
    went = local("2026-10-08T10:00")
    await svc.accounts.add_entry(a.id, "adjustment", -11 * PLN, "fix-1", at=went)
    await svc.accounts.add_entry(a.id, "topup", PLN // 2, "card-2", at=went + timedelta(days=2))
    assert svc.pool is not None

    async def mark() -> datetime | None:
        assert svc.pool is not None
        since: datetime | None = await svc.pool.fetchval(
            "select since from billing_negative_marks where account = $1", a.id
        )
        return since

    await bill_run(svc.accounts, PERIOD, SETTINGS, went + timedelta(days=3))
    assert await mark() == went
    for wrong in (went + timedelta(days=1), datetime(2001, 1, 1, tzinfo=UTC)):
        await svc.pool.execute("update billing_negative_marks set since = $1", wrong)
        early = await bill_run(svc.accounts, PERIOD, SETTINGS, went + timedelta(days=13))
        assert early.lifecycle == [] and await mark() == went
    await svc.pool.execute("update billing_negative_marks set since = $1", went + timedelta(days=1))
    [action] = (await bill_run(svc.accounts, PERIOD, SETTINGS, went + timedelta(days=14))).lifecycle
    assert (action.kind, action.negative_since) == (FOREIGN, went)
    # back above zero: the mark goes, and the block is lifted
    await svc.accounts.add_entry(
        a.id, "adjustment", 2 * PLN, "refund", at=went + timedelta(days=15)
    )
    lifted = await bill_run(svc.accounts, PERIOD, SETTINGS, went + timedelta(days=16))
    assert [x.kind for x in lifted.lifecycle] == ["foreign_numbers_restored"]
    assert await mark() is None


async def test_a_bad_shard_is_a_clear_error(svc: Services) -> None:
    import pytest

    from tollgate.cli import CliError, build_parser

    for bad in ("2/2", "x/3", "1", "-1/2"):
        args = build_parser().parse_args(["bill", "run", f"--shard={bad}"])
        with pytest.raises(CliError) as err:
            await args.run(svc, args)
        assert err.value.code == 2 and "--shard" in str(err.value)
