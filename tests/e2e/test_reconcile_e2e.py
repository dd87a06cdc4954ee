"""Reconciliation through the real rig: calls of different outcomes placed through Asterisk
and `tollgate serve`, then Asterisk's own CDRs (cdr_custom CSV) compared with the CDRs
tollgate's writer put in PostgreSQL: no differences, and the malformed number (refused by
the dialplan before tollgate was asked) classified as never rated."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from cdr.reconcile import Window, parse_rows, reconcile
from tests.e2e.conftest import E2E

PLN = 1_000_000
MOBILE = "601234567"  # retail deck: 0.19 PLN/min, billed per second


async def test_asterisk_and_tollgate_agree_on_every_call(e2e: E2E) -> None:
    # the CSV keeps earlier tests' calls: start on a fresh second and look only from there
    start = datetime.fromtimestamp(int(time.time()) + 1, UTC)
    await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
    await e2e.account("phone-a", balance=19_000)  # 6 s of credit: Asterisk cuts the call
    await e2e.account("phone-b", balance=0)  # refused: insufficient credit
    await e2e.account("phone-c", balance=PLN)  # emergency, and a malformed number
    await e2e.account("phone-d", balance=10 * PLN)  # the phone hangs up
    cut, refused, emergency, hung_up = await asyncio.gather(
        e2e.call(MOBILE, "phone-a"),
        e2e.call(MOBILE, "phone-b"),
        e2e.call("112", "phone-c", hangup_after_ms=1500),
        e2e.call(MOBILE, "phone-d", hangup_after_ms=2000),
    )
    bad = await e2e.call("12ab", "phone-c")
    assert cut.answered and cut.bye_from_asterisk
    assert refused.status == 402 and emergency.answered and hung_up.answered
    assert bad.status == 404
    for phone in ("phone-a", "phone-b", "phone-c", "phone-d"):
        assert len(await e2e.cdrs(phone, 1)) == 1, phone

    rows: list[dict[str, str]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = e2e.rig.cdr_rows()
        if sum(1 for c in parse_rows(rows) if c.start >= start) >= 5:
            break
        await asyncio.sleep(0.2)
    window = Window(start, datetime.now(UTC) + timedelta(seconds=2))
    assert e2e.svc.pool is not None
    async with e2e.svc.pool.acquire() as conn:
        report = await reconcile(conn, rows, window, switch="e2e")
    assert report.differences == [], report.as_dict()
    # an emergency call's CDR may start a little before the window (tollgate dates a call it
    # never authorized from its end minus billsec): it is still matched, by its id
    assert (report.asterisk_calls, report.matched) == (5, 4)
    assert [c.dst for c in report.not_rated] == ["12ab"]
