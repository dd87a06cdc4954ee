"""Outage compensation (terms §9.7-9.9) on the real PostgreSQL and Redis: 1/30 of the average
monthly use over the 3 months before the outage's day, per started day of an outage over
24 hours, credited once, with a notice; every instant pinned."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing import cli_args as billing_cli
from billing import outage_rules, outages
from billing.errors import BillingError
from billing.fees import subscribe
from billing.settings import BillingSettings
from core.env import SettingsError
from notify import contacts
from notify.notices import list_notices
from notify.outages import scan
from notify.settings import NotifySettings
from rating.accounts import AccountStatus
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.panel import cdr, store_cdrs

PLN = 1_000_000
WARSAW = ZoneInfo("Europe/Warsaw")
START = datetime(2026, 11, 10, 10, 0, tzinfo=WARSAW)  # 09:00 UTC
END = datetime(2026, 11, 12, 12, 0, tzinfo=WARSAW)  # 50 hours: 3 started days
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_started_days_of_an_outage_over_24_hours() -> None:
    t = datetime(2026, 11, 10, tzinfo=UTC)
    assert outages.days_of(t, t + timedelta(hours=24)) == 0  # not longer than 24 h
    assert outages.days_of(t, t + timedelta(hours=24, seconds=1)) == 2
    assert outages.days_of(t, t + timedelta(hours=48)) == 2
    assert outages.days_of(t, t + timedelta(hours=50)) == 3
    assert outages.days_of(t, t + timedelta(days=400)) == 365  # §9.9
    assert outages.amount_of(45 * PLN, 3, 1, full=True) == 1_500_000
    assert outages.amount_of(9 * PLN, 3, 2_595_600, full=False) == 898_751  # cut
    assert outages.amount_of(0, 3, 1, full=True) == 0


async def test_each_affected_account_is_credited_once_with_a_notice(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    opened = datetime(2026, 6, 1, tzinfo=UTC)
    old = await make_account(at=opened)
    new = await make_account(at=datetime(2026, 10, 11, tzinfo=WARSAW))  # 30 days and 1 hour
    idle = await make_account(at=opened)  # used nothing (free services, §9.8)
    closed = await make_account(at=opened)
    later = await make_account(at=START + timedelta(hours=1))  # opened during the outage
    await svc.accounts.set_status(closed.id, AccountStatus.CLOSED, "test", at=opened)
    window_from = datetime(2026, 8, 10, tzinfo=WARSAW)
    window_to = datetime(2026, 11, 10, tzinfo=WARSAW)
    calls = [
        cdr(old.id, 1, window_from, cost=10 * PLN),
        cdr(old.id, 2, window_to - timedelta(seconds=1), cost=20 * PLN),
        cdr(old.id, 3, window_from - timedelta(seconds=1), cost=99 * PLN),  # before
        cdr(old.id, 4, window_to, cost=99 * PLN),  # the outage's day: after
        cdr(new.id, 5, window_to - timedelta(days=1), cost=9 * PLN),
        cdr(closed.id, 6, window_to - timedelta(days=1), cost=9 * PLN),
    ]
    await store_cdrs(svc.pool, calls)
    await svc.accounts.add_entry(old.id, "fee", -15 * PLN, "fee/x", at=window_from)
    async with svc.pool.acquire() as conn:
        for a, lang in ((old, "pl"), (new, "en")):
            await contacts.put(
                conn, contacts.Contact(a.id, language=lang, email=f"{a.id}@ex.pl"), NOW
            )
        outage = await outages.record(conn, START, END, None, "core router", "eve", NOW)
        before = {a.id: (await svc.accounts.live(a.id)).balance for a in (old, new)}
        done = await outages.compensate(svc.accounts, conn, outage.id, NOW)
    got = {c.account: (c.days, c.use_total, c.amount, c.booked) for c in done}
    assert got == {
        old.id: (3, 45 * PLN, 1_500_000, True),  # 45 PLN over 3 months: 15/30 a day
        new.id: (3, 9 * PLN, 898_751, True),  # 9 PLN over 30 days and an hour
    }
    for a in (old, new):
        assert (await svc.accounts.live(a.id)).balance == before[a.id] + got[a.id][2]
    assert idle.id not in got and closed.id not in got and later.id not in got

    async with svc.pool.acquire() as conn:
        again = await outages.compensate(svc.accounts, conn, outage.id, NOW)
    assert [(c.account, c.booked) for c in again] == [(old.id, False), (new.id, False)]
    assert (await svc.accounts.live(old.id)).balance == before[old.id] + 1_500_000

    settings = NotifySettings()
    assert await scan(svc.pool, settings, NOW) == 2
    assert await scan(svc.pool, settings, NOW) == 0
    async with svc.pool.acquire() as conn:
        (n,) = await list_notices(conn, old.id)
    assert n.kind == "outage_compensation" and n.subject.startswith("Rekompensata")
    assert "od 2026-11-10 10:00 do 2026-11-12 12:00 Europe/Warsaw (dni: 3)" in n.body
    assert "rekompensatę 1,50 PLN" in n.body
    assert (n.data["account"], n.data["currency"], n.data["amount_micro"], n.data["days"]) == (
        old.id, "PLN", 1_500_000, 3,
    )  # fmt: skip


async def test_only_the_listed_accounts_and_bad_input_named(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert svc.pool is not None
    opened = datetime(2026, 6, 1, tzinfo=UTC)
    a, b = await make_account(at=opened), await make_account(at=opened)
    day = datetime(2026, 11, 9, tzinfo=WARSAW)
    await store_cdrs(svc.pool, [cdr(x.id, i, day, cost=9 * PLN) for i, x in enumerate((a, b))])
    async with svc.pool.acquire() as conn:
        for bad, field in (
            ((END, START, None), "ended_at"),
            ((START, NOW + timedelta(hours=1), None), "ended_at"),
            ((START, END, ["nobody"]), "accounts"),
        ):
            with pytest.raises(BillingError) as err:
                await outages.record(conn, *bad, "", "eve", NOW)
            assert err.value.field == field
        assert await outages.list_outages(conn) == []  # nothing written

    parser = argparse.ArgumentParser(prog="tollgate")
    billing_cli.register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(list(argv))
        capsys.readouterr()
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    rec = await run(
        "outage", "record", "--start", "2026-11-10T10:00", "--end", "2026-11-12T12:00",
        "--account", a.id, "--reason", "core router", "--by", "eve", "--now", NOW.isoformat(),
    )  # fmt: skip
    assert rec["accounts"] == [a.id] and rec["days"] == 3
    assert datetime.fromisoformat(rec["started_at"]) == START  # no zone: the billing zone
    out = await run("outage", "compensate", str(rec["id"]), "--now", NOW.isoformat())
    assert [c["account"] for c in out["compensations"]] == [a.id]
    assert out["compensations"][0]["amount"] == 9 * PLN * 3 // 90
    assert [o["id"] for o in await run("outage", "list")] == [rec["id"]]


def test_months_per_started_12_hours_beyond_the_first_day() -> None:
    """The other provider's §10c (and §10f's cap of a year's subscription), at the edges."""
    t = datetime(2026, 11, 10, tzinfo=UTC)
    h = timedelta(hours=1)
    s = timedelta(seconds=1)
    assert outage_rules.months_of(t, t + 24 * h) == 0  # not over 24 hours
    assert outage_rules.months_of(t, t + 24 * h + s) == 1
    assert outage_rules.months_of(t, t + 36 * h) == 1  # one started 12 h
    assert outage_rules.months_of(t, t + 36 * h + s) == 2
    assert outage_rules.months_of(t, t + 48 * h) == 2
    assert outage_rules.months_of(t, t + (24 + 12 * 12) * h) == 12
    assert outage_rules.months_of(t, t + (24 + 12 * 12) * h + s) == 12  # §10f
    assert outage_rules.months_of(t, t + timedelta(days=400)) == 12


async def test_an_account_under_the_other_providers_rule_gets_months_of_its_fees(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    opened = datetime(2026, 6, 1, tzinfo=UTC)
    monthly = await make_account(at=opened)
    usage = await make_account(at=opened)
    nofee = await make_account(at=opened)
    start = datetime(2026, 11, 10, 0, 30, tzinfo=WARSAW)  # 9 November 23:30 UTC
    end = start + timedelta(hours=36, seconds=1)  # 2 months; 2 started days
    three = (monthly, usage, nofee)
    early = start - timedelta(days=3)
    await store_cdrs(svc.pool, [cdr(a.id, i, early, cost=9 * PLN) for i, a in enumerate(three)])
    async with svc.pool.acquire() as conn:
        # fees in force on the outage's day in the account's calendar (10 November)
        await subscribe(conn, monthly.id, "line", 20 * PLN, date(2026, 1, 1))
        await subscribe(conn, monthly.id, "number", 5 * PLN, date(2026, 11, 10))
        await subscribe(conn, monthly.id, "later", 7 * PLN, date(2026, 11, 11))
        await subscribe(conn, usage.id, "line", 20 * PLN, date(2026, 1, 1))
        for a in (monthly, nofee):
            await outage_rules.set_rule(conn, a.id, "month_per_12h", "eve", NOW)
        await contacts.put(conn, contacts.Contact(monthly.id, language="en", email="m@ex.pl"), NOW)
        outage = await outages.record(conn, start, end, None, "core router", "eve", NOW)
        before = (await svc.accounts.live(monthly.id)).balance
        done = await outages.compensate(svc.accounts, conn, outage.id, NOW, "use_per_day")
        stored = await conn.fetchrow(
            "select rule, months, use_total from outage_compensations where account = $1",
            monthly.id,
        )
    got = {c.account: (c.rule, c.months, c.amount) for c in done}
    assert got == {
        monthly.id: ("month_per_12h", 2, 2 * 25 * PLN),  # line and number, two months
        usage.id: ("use_per_day", 0, 9 * PLN * 2 // 90),  # the default: §9.7, 2 days
    }  # nofee: no subscription, nothing to extend
    assert (await svc.accounts.live(monthly.id)).balance == before + 50 * PLN
    assert stored is not None and tuple(stored) == ("month_per_12h", 2, 25 * PLN)

    assert await scan(svc.pool, NotifySettings(), NOW) == 2
    assert await scan(svc.pool, NotifySettings(), NOW) == 0
    async with svc.pool.acquire() as conn:
        (n,) = await list_notices(conn, monthly.id)
    assert n.kind == "outage_compensation_months"
    assert "by 2 month(s)" in n.body and "50.00 PLN" in n.body


async def test_the_default_rule_and_an_accounts_own_from_the_command_line(
    svc: Services,
    make_account: AccountFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert svc.pool is not None
    opened = datetime(2026, 6, 1, tzinfo=UTC)
    a, b = await make_account(at=opened), await make_account(at=opened)
    async with svc.pool.acquire() as conn:
        for x in (a, b):
            await subscribe(conn, x.id, "line", 10 * PLN, date(2026, 1, 1))
    day = START - timedelta(days=5)
    await store_cdrs(svc.pool, [cdr(x.id, i, day, cost=9 * PLN) for i, x in enumerate((a, b))])
    parser = argparse.ArgumentParser(prog="tollgate")
    billing_cli.register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(list(argv))
        capsys.readouterr()
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    monkeypatch.setenv("TOLLGATE_OUTAGE_RULE", "month_per_12h")
    got = await run("outage", "rule", a.id, "use_per_day", "--by", "eve", "--now", NOW.isoformat())
    assert (got["account"], got["rule"], got["set_by"]) == (a.id, "use_per_day", "eve")
    rules = await run("outage", "rules")
    assert rules["default"] == "month_per_12h"
    assert [r["account"] for r in rules["accounts"]] == [a.id]
    rec = await run(
        "outage", "record", "--start", "2026-11-10T10:00", "--end", "2026-11-12T12:00",
        "--reason", "core router", "--by", "eve", "--now", NOW.isoformat(),
    )  # fmt: skip
    out = await run("outage", "compensate", str(rec["id"]), "--now", NOW.isoformat())
    by = {c["account"]: (c["rule"], c["amount"]) for c in out["compensations"]}
    # 50 hours: 3 started days (§9.7) for a, 3 started 12 h past the first day for b
    assert by == {a.id: ("use_per_day", 9 * PLN * 3 // 90), b.id: ("month_per_12h", 30 * PLN)}
    cleared = await run("outage", "rule", a.id, "default")
    assert cleared == {"account": a.id, "rule": "default", "removed": True}
    assert (await run("outage", "rules"))["accounts"] == []

    async with svc.pool.acquire() as conn:
        with pytest.raises(BillingError) as err:
            await outage_rules.set_rule(conn, "nobody", "month_per_12h", "eve", NOW)
        assert err.value.field == "account"
        with pytest.raises(BillingError) as err:
            await outages.compensate(svc.accounts, conn, rec["id"], NOW, "weekly")
        assert err.value.field == "TOLLGATE_OUTAGE_RULE"
    with pytest.raises(SettingsError):
        BillingSettings.from_env({"TOLLGATE_OUTAGE_RULE": "weekly"})
