"""Plans' input, pro-rata by days and the `bundles` field the scripts read."""

from __future__ import annotations

from datetime import datetime

import pytest

from cdr.model import Cdr
from rating.bundles import days_left, encode, period_of, pro_rata
from rating.plans import Allowance, Assignment, Plan, PlanError, parse_allowance

WARSAW = "Europe/Warsaw"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_allowances_parse_minutes_classes_prefixes_and_a_label() -> None:
    a = parse_allowance("300m:mobile,geographic:48,+49:PL mobile+fixed".replace("+49", "49"))
    assert a == Allowance(18_000, ("mobile", "geographic"), ("48", "49"), "PL mobile+fixed")
    assert parse_allowance("90") == Allowance(90)
    for bad, field in (("x", "--allowance"), ("0", "--allowance.seconds"),
                       ("60:sms", "--allowance.classes"), ("60::4a", "--allowance.prefixes"),
                       ("60:::a|b", "--allowance.label")):  # fmt: skip
        with pytest.raises(PlanError) as exc:
            parse_allowance(bad)
        assert exc.value.field == field, bad


def test_a_plan_names_what_is_wrong() -> None:
    ok = (Allowance(60),)
    for plan, field in ((Plan("a b", 0, "PLN", ok), "name"), (Plan("a", -1, "PLN", ok), "fee"),
                        (Plan("a", 0, "ZZZ", ok), "currency"), (Plan("a", 0, "PLN"), "allowances"),
                        (Plan("a", 0, "PLN", ok, "week"), "period")):  # fmt: skip
        with pytest.raises(PlanError) as exc:
            plan.checked()
        assert exc.value.field == field


def test_months_and_pro_rata_are_in_the_accounts_zone() -> None:
    # 23:30 UTC on 31 January is already February in Warsaw
    assert period_of(at("2027-01-31T23:30:00+00:00"), WARSAW) == "2027-02"
    assert period_of(at("2027-01-31T23:30:00+00:00"), "UTC") == "2027-01"
    assert days_left(at("2027-04-16T09:00:00+02:00"), WARSAW) == (15, 30)
    assert days_left(at("2027-02-01T00:00:00+01:00"), WARSAW) == (28, 28)
    # rounded down: 29.99 for 15 of 31 days = 14.5112903..
    assert pro_rata(29_990_000, at("2027-01-17T12:00:00+01:00"), WARSAW) == 14_511_290


def test_the_bundles_field_has_a_first_month_only_for_a_start_after_the_first() -> None:
    plan = Plan("p", 0, "PLN", (Allowance(300, ("mobile",), ("48",)), Allowance(60)))
    first = Assignment(7, "a", "p", at("2027-01-01T00:00:00+01:00"))
    mid = Assignment(8, "a", "p", at("2027-04-16T09:00:00+02:00"), at("2027-06-01T00:00:00+02:00"))
    assert encode([(first, plan)], WARSAW) == (
        "7.0|300|mobile|48|1798758000000||2027-01|;7.1|60|||1798758000000||2027-01|"
    )
    entries = encode([(mid, plan)], WARSAW).split(";")
    ends = (mid.start_at, mid.end_at or mid.start_at)
    start, end = (str(int(t.timestamp() * 1000)) for t in ends)
    assert entries[0] == f"8.0|300|mobile|48|{start}|{end}|2027-04|150"
    assert entries[1].endswith("|2027-04|30")


def test_a_cdr_carries_its_bundle_seconds() -> None:
    entry = {"call_id": "c1", "account": "a", "state": "finished", "ended_at": "1798758060000",
             "authorized_at": "1798758000000", "billsec": "60", "cost": "0",
             "bundle": "7.0:2027-01", "bundle_seconds": "60"}  # fmt: skip
    cdr = Cdr.from_stream(entry)
    assert (cdr.bundle, cdr.bundle_seconds, cdr.cost) == ("7.0:2027-01", 60, 0)
