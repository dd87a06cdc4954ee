"""Reconciliation of tollgate's CDRs (real PostgreSQL) with Asterisk's cdr_custom rows, on
synthetic mismatches of every kind, and through the `cdr reconcile` command."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdr import cli_args as cdr_cli
from cdr.model import Cdr
from cdr.reconcile import ASTERISK_FIELDS, Kind, ReconcileError, Window, parse_rows, reconcile
from runtime.services import Services
from tests.integration.test_billing import cdr, store_cdrs

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
NOVEMBER = Window.month("2026-11")


def row(uniqueid: str, start: datetime, billsec: int, disposition: str = "ANSWERED",
        userfield: str | None = None, **changes: str) -> dict[str, str]:  # fmt: skip
    """An Asterisk CDR row (times as Asterisk writes them: local wall clock, here UTC)."""
    answer = start + timedelta(seconds=2) if disposition == "ANSWERED" else None
    end = (answer or start) + timedelta(seconds=billsec)
    fields = {
        "accountcode": "acct-r",
        "src": "600100200",
        "dst": "601234567",
        "dcontext": "tollgate-outbound",
        "clid": '"" <600100200>',
        "channel": f"PJSIP/phone-a-{uniqueid}",
        "dstchannel": "PJSIP/carrier-1" if answer else "",
        "lastapp": "Dial" if answer else "PJSIPHangup",
        "lastdata": "",
        "start": start.strftime("%Y-%m-%d %H:%M:%S"),
        "answer": answer.strftime("%Y-%m-%d %H:%M:%S") if answer else "",
        "end": end.strftime("%Y-%m-%d %H:%M:%S"),
        "duration": str(int((end - start).total_seconds())),
        "billsec": str(billsec),
        "disposition": disposition,
        "amaflags": "DOCUMENTATION",
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
        "userfield": uniqueid if userfield is None else userfield,
        "sequence": "1",
    }
    fields.update(changes)
    return fields


def pair(n: int, billsec: int = 60, **changes: Any) -> tuple[Cdr, dict[str, str]]:
    """A call as both sides record it, consistently."""
    start = T0 + timedelta(minutes=n)
    t = cdr("acct-r", start, billsec, call_id=f"17632{n:05d}.{n}", **changes)
    return t, row(t.call_id, start, billsec)


async def test_matching_calls_of_every_outcome_show_no_difference(svc: Services) -> None:
    answered, a_row = pair(1, 60)
    rounded, r_row = pair(2, 30)
    r_row["billsec"] = "31"  # Asterisk rounds differently: within 1 s
    denied, d_row = pair(3, 0, state="denied", answered=False, cost=0, rated_cost=0,
                         decision="DENY", reason="PREMIUM_BLOCKED", disposition="")  # fmt: skip
    d_row.update(disposition="FAILED", billsec="0", lastapp="PJSIPHangup")
    emergency, e_row = pair(4, 15, e164="112", prefix="", cost=0, rated_cost=0, emergency=True)
    busy, b_row = pair(5, 0, answered=False, cost=0, rated_cost=0, disposition="BUSY")
    b_row.update(disposition="BUSY", billsec="0")
    await store_cdrs(svc.settings.pg_dsn, [answered, rounded, denied, emergency, busy])
    bad_number = row("1763299999.99", T0, 0, "FAILED", userfield="", dst="12ab")
    rows = [a_row, r_row, d_row, e_row, b_row, bad_number]
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        report = await reconcile(conn, rows, NOVEMBER)
    assert report.ok, report.as_dict()
    assert (report.tollgate_calls, report.asterisk_calls, report.matched) == (5, 6, 5)
    # the malformed number never reached rating: Asterisk-only by design, not a loss
    assert [c.dst for c in report.not_rated] == ["12ab"]


async def test_every_kind_of_mismatch_is_reported(svc: Services) -> None:
    ok, ok_row = pair(1)
    long, long_row = pair(2, 60)
    long_row["billsec"] = "63"
    hung, hung_row = pair(3, 40)
    hung_row.update(disposition="NO ANSWER", billsec="0")
    expired, x_row = pair(4, 0, state="expired", answered=False, cost=0, rated_cost=0)
    wrong, w_row = pair(5)
    w_row["accountcode"] = "acct-other"
    lost_row = row("1763288888.1", T0 + timedelta(minutes=6), 90)  # has a call id, answered
    ghost, _ = pair(7)  # tollgate only
    await store_cdrs(svc.settings.pg_dsn, [ok, long, hung, expired, wrong, ghost])
    rows = [ok_row, long_row, hung_row, x_row, w_row, lost_row]
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        report = await reconcile(conn, rows, NOVEMBER)
    found = {(d.kind, d.call_id) for d in report.differences}
    assert found == {
        (Kind.BILLSEC, long.call_id),
        (Kind.DISPOSITION, hung.call_id),
        (Kind.UNSETTLED, expired.call_id),
        (Kind.ACCOUNT, wrong.call_id),
        (Kind.MISSING_IN_TOLLGATE, "1763288888.1"),
        (Kind.MISSING_IN_ASTERISK, ghost.call_id),
    }
    assert not report.ok and report.counts()["billsec_mismatch"] == 1
    assert report.not_rated == []


async def test_a_call_on_the_edge_of_the_period_is_matched_across_it(svc: Services) -> None:
    end = NOVEMBER.end
    inside = cdr("acct-r", end - timedelta(milliseconds=300), 20, call_id="1764547199.5")
    # Asterisk's clock said the next second: outside the period, still the same call
    edge_row = row(inside.call_id, end, 20)
    before = cdr("acct-r", NOVEMBER.start + timedelta(seconds=1), 10, call_id="1761955201.1")
    before_row = row(before.call_id, NOVEMBER.start - timedelta(seconds=1), 10)
    await store_cdrs(svc.settings.pg_dsn, [inside, before])
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        report = await reconcile(conn, [edge_row, before_row], NOVEMBER)
    assert report.ok, report.as_dict()
    assert report.matched == 2


def test_rows_of_one_call_are_merged_and_times_read_in_asterisks_zone() -> None:
    first = row("1.1", T0, 0, "NO ANSWER", userfield="call-1")
    second = row("1.1", T0 + timedelta(seconds=20), 30, userfield="call-1", sequence="2")
    [call] = parse_rows([first, second])
    assert (call.key, call.answered, call.billsec, call.rows) == ("call-1", True, 30, 2)
    [warsaw] = parse_rows([row("2.2", T0, 5)], "Europe/Warsaw")
    assert warsaw.start == T0 - timedelta(hours=1)
    with pytest.raises(ReconcileError):
        parse_rows([{**row("3.3", T0, 5), "start": "yesterday"}])
    with pytest.raises(ReconcileError):
        Window.month("2026-13")
    assert Window.month("2026-11", "Europe/Warsaw").start == datetime(2026, 10, 31, 23, tzinfo=UTC)


async def test_cdr_reconcile_command(
    svc: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, ok_row = pair(1)
    ghost, _ = pair(2)
    await store_cdrs(svc.settings.pg_dsn, [ok, ghost])
    path = tmp_path / "tollgate-cdr.csv"
    with path.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerow([ok_row[c] for c in ASTERISK_FIELDS])
    p = argparse.ArgumentParser(prog="tollgate")
    cdr_cli.register(p.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = p.parse_args(["cdr", "reconcile", *argv])
        capsys.readouterr()
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    out = await run("--period", "2026-11", "--asterisk-csv", str(path))
    assert (out["ok"], out["matched"], out["counts"]["missing_in_asterisk"]) == (False, 1, 1)
    assert out["differences"][0]["call_id"] == ghost.call_id
    out = await run("--from", "2026-11-10T12:00", "--to", "2026-11-10T12:01:30",
                    "--asterisk-csv", str(path))  # fmt: skip
    assert out["ok"] and out["tollgate_calls"] == 1
    # the CSV of switch x: tollgate's CDRs are another switch's, the ghost is not this
    # Asterisk's business, and a call id of another switch is another call (ids are unique
    # per box only): the Asterisk call has no CDR on x
    out = await run("--period", "2026-11", "--asterisk-csv", str(path), "--switch", "x")
    assert (out["ok"], out["tollgate_calls"], out["matched"]) == (False, 0, 0)
    assert out["counts"]["missing_in_tollgate"] == 1
    from tollgate.cli import CliError

    for argv in (
        ("--asterisk-csv", str(path)),
        ("--period", "2026-11", "--asterisk-csv", str(tmp_path / "none.csv")),
        ("--from", "2026-11-02", "--to", "2026-11-01", "--asterisk-csv", str(path)),
    ):
        with pytest.raises(CliError):
            await run(*argv)
