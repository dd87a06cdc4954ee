"""The complaints register on the real PostgreSQL and Redis: deadlines in the customer's
calendar (DST, other zones, month ends), deemed acceptance and its credit, credit notes."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from billing.complaints import (
    ComplaintError,
    Filing,
    acknowledge,
    answer,
    file,
    get,
    list_complaints,
    overdue,
    settle_overdue,
)
from billing.documents import Draft, Kind, Line, documents_of, issue
from billing.period import Period
from billing.postpaid import invoice_source
from billing.settings import BillingSettings
from rating.accounts import AccountKind
from runtime.services import Services
from tests.conftest import AccountFactory, PanelFactory

PLN = 1_000_000
# 00:30 on 15 March in Warsaw, still 14 March in New York; the deadline spans the night
# Warsaw moves its clocks forward (29 March 2026)
FILED = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)
SETTINGS = BillingSettings()


def _calls(account: str, **kw: object) -> Filing:
    fields: dict[str, object] = {
        "account": account,
        "event_at": FILED - timedelta(days=3),
        "description": "calls billed that I never made",
        "call_ids": ("sw1/abc",),
        "requested": 5 * PLN,
    }
    fields.update(kw)
    return Filing(**fields)  # type: ignore[arg-type]


async def test_deadline_is_the_end_of_the_14th_day_in_the_customers_zone(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    warsaw = await make_account(at=FILED)
    new_york = await make_account(at=FILED, timezone="America/New_York")
    async with svc.pool.acquire() as conn:
        pl = await file(conn, _calls(warsaw.id), 14, FILED)
        us = await file(conn, _calls(new_york.id), 14, FILED)
        other = await file(conn, _calls(warsaw.id), 7, FILED)  # the other provider's terms
    # 15 March + 14 days = 29 March, ending at midnight CEST (UTC+2) after the change
    assert pl.due_at == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    # 14 March + 14 days = 28 March, ending at midnight EDT (UTC-4)
    assert us.due_at == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
    # 15 March + 7 days = 22 March, ending at midnight CET (UTC+1)
    assert other.due_at == datetime(2026, 3, 22, 23, 0, tzinfo=UTC)
    assert pl.status == "filed"


async def test_filing_up_to_12_months_after_the_event(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    acct = await make_account(at=FILED)
    event = datetime(2025, 3, 31, 10, 0, tzinfo=UTC)  # noon in Warsaw
    last_minute = datetime(2026, 3, 31, 21, 59, tzinfo=UTC)  # 23:59 CEST, 31 March 2026
    async with svc.pool.acquire() as conn:
        ok = await file(conn, _calls(acct.id, event_at=event), 14, last_minute)
        assert ok.id
        with pytest.raises(ComplaintError) as late:
            await file(
                conn, _calls(acct.id, event_at=event), 14, last_minute + timedelta(minutes=1)
            )
        assert late.value.code == "COMPLAINT_TOO_LATE"
        for bad, named in (
            ({"description": "  "}, "description"),
            ({"call_ids": (), "invoice": None, "period": None}, "subject"),
            ({"event_at": FILED + timedelta(seconds=1)}, "event_at"),
            ({"invoice": "INV/404"}, "invoice"),
            ({"period": "2026-13"}, "period"),
        ):
            with pytest.raises(Exception) as err:
                await file(conn, _calls(acct.id, **bad), 14, FILED)
            assert getattr(err.value, "field", None) == named, bad
    async with svc.pool.acquire() as conn:
        assert len(await list_complaints(conn, acct.id)) == 1  # nothing partial was written


async def test_unanswered_complaint_is_deemed_accepted_and_credited_once(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    acct = await make_account(balance=1 * PLN, at=FILED)
    async with svc.pool.acquire() as conn:
        c = await file(conn, _calls(acct.id), 14, FILED)
        c = await acknowledge(conn, c.id, FILED + timedelta(hours=1))
        assert c.status == "acknowledged"
        assert await overdue(conn, c.due_at - timedelta(microseconds=1)) == []
        assert [x.id for x in await overdue(conn, c.due_at)] == [c.id]
        (settled,) = await settle_overdue(svc.accounts, conn, SETTINGS, c.due_at)
        assert (
            await settle_overdue(svc.accounts, conn, SETTINGS, c.due_at + timedelta(days=1)) == []
        )
        with pytest.raises(ComplaintError) as closed:
            await answer(svc.accounts, conn, SETTINGS, c.id, False, "no", c.due_at)
        assert closed.value.code == "COMPLAINT_CLOSED"
    assert (settled.status, settled.credited, settled.answered_at) == (
        "deemed_accepted",
        5 * PLN,
        c.due_at,
    )
    assert settled.credit_note is None  # a prepaid account's calls: no invoice to correct
    assert (await svc.accounts.live(acct.id)).balance == 6 * PLN
    refs = [e.reference for e in await svc.accounts.entries(acct.id)]
    assert refs.count(f"complaint/{c.id}") == 1


async def test_answer_too_late_settles_instead(svc: Services, make_account: AccountFactory) -> None:
    assert svc.pool is not None
    acct = await make_account(at=FILED)
    async with svc.pool.acquire() as conn:
        c = await file(conn, _calls(acct.id, requested=2 * PLN), 14, FILED)
        with pytest.raises(ComplaintError) as late:
            await answer(svc.accounts, conn, SETTINGS, c.id, False, "rejected", c.due_at)
        assert late.value.code == "COMPLAINT_DEEMED_ACCEPTED"
        assert (await get(conn, c.id)).status == "deemed_accepted"
    assert (await svc.accounts.live(acct.id)).balance == 2 * PLN


async def test_rejection_opens_an_appeal_window(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    acct = await make_account(at=FILED)
    async with svc.pool.acquire() as conn:
        c = await file(conn, _calls(acct.id), 14, FILED)
        with pytest.raises(ComplaintError):
            await answer(svc.accounts, conn, SETTINGS, c.id, False, "  ", FILED)
        at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
        rejected = await answer(svc.accounts, conn, SETTINGS, c.id, False, "calls were made", at)
        with pytest.raises(ComplaintError) as again:
            await answer(svc.accounts, conn, SETTINGS, c.id, True, "changed my mind", at)
        assert again.value.code == "COMPLAINT_CLOSED"
    assert rejected.status == "rejected" and rejected.credited == 0
    # 20 March + 14 days = 3 April, ending at midnight CEST
    assert rejected.appeal_until == datetime(2026, 4, 3, 22, 0, tzinfo=UTC)
    assert (await svc.accounts.live(acct.id)).balance == 0


async def test_accepted_invoice_complaint_gets_a_credit_note(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    acct = await make_account(at=FILED, kind=AccountKind.POSTPAID, credit_limit=100 * PLN)
    period = Period(2026, 2)
    async with svc.pool.acquire() as conn:
        invoice, _ = await issue(
            conn,
            Draft(
                Kind.INVOICE,
                acct.id,
                invoice_source(acct.id, period),
                "PLN",
                date(2026, 2, 28),
                (Line("Calls", 40 * PLN),),
                period=str(period),
            ),
            SETTINGS,
            datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        )
        c = await file(
            conn,
            _calls(acct.id, call_ids=(), invoice=invoice.number, requested=12_345_678),
            14,
            FILED,
        )
        accepted = await answer(
            svc.accounts, conn, SETTINGS, c.id, True, "the trunk double-billed", FILED
        )
        docs = await documents_of(conn, acct.id)
    note = docs[-1]
    assert (note.kind, note.corrects, note.gross) == (Kind.CREDIT_NOTE, invoice.id, -12_350_000)
    assert accepted.credit_note == note.number and accepted.credited == 12_345_678
    # in Polish: the line and the reason the korekta prints (and KSeF gets)
    assert note.lines[0]["text"] == f"Reklamacja nr {c.id} uznana"
    assert note.note == f"uznana reklamacja nr {c.id}"
    # the ledger gets the exact amount asked plus the document's rounding: 12.35 in all
    assert (await svc.accounts.live(acct.id)).balance == 12_350_000


async def test_the_scheduler_settles_overdue_complaints(
    svc: Services, make_account: AccountFactory
) -> None:
    from tollgate.scheduler import SchedulerSettings, job_complaints

    assert svc.pool is not None
    acct = await make_account(at=FILED)
    async with svc.pool.acquire() as conn:
        c = await file(conn, _calls(acct.id, requested=3 * PLN), 14, FILED)
    # the daily run at 03:00 local the morning after the deadline
    at = c.due_at + timedelta(hours=3)
    assert await job_complaints(svc, SchedulerSettings(), at) == f"deemed accepted: {c.id}"
    async with svc.pool.acquire() as conn:
        settled = await get(conn, c.id)
    assert (settled.status, settled.answered_at, settled.credited) == (
        "deemed_accepted",
        c.due_at,
        3 * PLN,
    )


def _tollgate(s: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env |= {
        "TOLLGATE_PG_DSN": s.settings.pg_dsn,
        "TOLLGATE_REDIS_URL": s.settings.redis_url,
        "TOLLGATE_REDIS_PREFIX": s.settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(s.settings.keyspace.shards),
        "TOLLGATE_COMPLAINT_ANSWER_DAYS": "7",
    }
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "complaint", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_files_acknowledges_and_answers(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(at=FILED)
    run = functools.partial(asyncio.to_thread, _tollgate, svc)
    late = await run(
        "file",
        "--account",
        acct.id,
        "--event-at",
        "2025-01-01T12:00",
        "--description",
        "x",
        "--period",
        "2025-01",
        "--now",
        "2026-03-15T00:30+01:00",
    )
    assert late.returncode == 2
    assert late.stderr == (
        "tollgate: event_at: complaints are accepted up to 12 months after the event\n"
    )
    filed = await run(
        "file",
        "--account",
        acct.id,
        "--event-at",
        "2026-03-10T12:00",
        "--description",
        "double charge",
        "--call",
        "sw1/abc",
        "--requested",
        "1.50",
        "--now",
        "2026-03-15T00:30+01:00",  # a zone is required: Warsaw's winter time
    )
    assert filed.returncode == 0, filed.stderr
    c = json.loads(filed.stdout)
    assert (c["answer_days"], c["due_at"]) == (7, "2026-03-22T23:00:00+00:00")
    acked = await run("ack", str(c["id"]), "--now", "2026-03-16T10:00+01:00")
    assert json.loads(acked.stdout)["status"] == "acknowledged"
    answered = await run(
        "answer",
        str(c["id"]),
        "--decision",
        "accept",
        "--text",
        "confirmed",
        "--credit",
        "1.00",
        "--now",
        "2026-03-16T11:00+01:00",
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["credited"] == "1.00"
    assert (await svc.accounts.live(acct.id)).balance == PLN
    unknown = await run("show", "999")
    assert unknown.returncode == 2 and "no complaint 999" in unknown.stderr


async def test_panel_customers_file_and_read_their_own_operators_answer(
    svc: Services, make_account: AccountFactory, panel: PanelFactory
) -> None:
    from panel_api.tokens import Role
    from tests.panel import bearer, token

    mine = await make_account()
    other = await make_account()
    op = bearer(await token(svc, Role.OPERATOR))
    cust = bearer(await token(svc, Role.CUSTOMER, mine.id))
    # the panel files at the wall clock: the event is a day before whatever now is
    event = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = {"event_at": event, "description": "dropped calls", "call_ids": ["sw1/x"]}
    client = await panel()
    filed = await client.post(
        f"/api/v1/accounts/{mine.id}/complaints",
        json={**body, "requested": "2.50"},
        headers=cust,
    )
    assert filed.status == 201, await filed.text()
    c = await filed.json()
    assert c["status"] == "filed" and c["requested"] == "2.50" and c["due_at"] > c["filed_at"]
    path = f"/api/v1/accounts/{mine.id}/complaints/{c['id']}"
    assert (await client.get(path, headers=cust)).status == 200
    theirs = f"/api/v1/accounts/{other.id}/complaints"
    assert (await client.get(theirs, headers=cust)).status == 404
    assert (await client.post(theirs, json=body, headers=cust)).status == 404
    wrong = f"/api/v1/accounts/{other.id}/complaints/{c['id']}"
    assert (await client.get(wrong, headers=op)).status == 404  # not that account's
    accept = f"/api/v1/complaints/{c['id']}/accept"
    assert (await client.post(accept, json={"text": "ok"}, headers=cust)).status == 403
    late = await client.post(
        f"/api/v1/accounts/{mine.id}/complaints",
        json={**body, "event_at": "2001-01-01T00:00:00Z"},
        headers=cust,
    )
    assert (await late.json())["error"]["code"] == "COMPLAINT_TOO_LATE"
    no_reason = await client.post(accept, json={}, headers=op)
    assert no_reason.status == 400
    acked = await client.post(f"/api/v1/complaints/{c['id']}/acknowledge", headers=op)
    assert (await acked.json())["status"] == "acknowledged"
    done = await client.post(accept, json={"text": "confirmed"}, headers=op)
    assert done.status == 200, await done.text()
    assert (await done.json())["credited"] == "2.50"
    again = await client.post(accept, json={"text": "twice"}, headers=op)
    assert (await again.json())["error"]["code"] == "COMPLAINT_CLOSED"
    listed = await client.get("/api/v1/complaints?status=accepted", headers=op)
    assert [x["id"] for x in (await listed.json())["items"]] == [c["id"]]
    assert (await svc.accounts.live(mine.id)).balance == 2_500_000


async def test_open_complaints_are_exported_by_how_soon_they_are_due(
    svc: Services, make_account: AccountFactory
) -> None:
    from prometheus_client import CollectorRegistry

    from tollgate.scheduler import SchedulerMetrics, export_complaints

    assert svc.pool is not None
    acct = await make_account(at=FILED)
    async with svc.pool.acquire() as conn:
        early = await file(conn, _calls(acct.id), 7, FILED)
        await file(conn, _calls(acct.id), 14, FILED)
        answered = await file(conn, _calls(acct.id, requested=0), 14, FILED)
        await answer(svc.accounts, conn, SETTINGS, answered.id, True, "yes", FILED)
    metrics = SchedulerMetrics(CollectorRegistry())

    def open_by_due() -> dict[str, float | None]:
        return {
            due: metrics.registry.get_sample_value("tollgate_complaints_open", {"due": due})
            for due in ("overdue", "within_48h", "later")
        }

    await export_complaints(svc.pool, metrics, early.due_at - timedelta(hours=48))
    assert open_by_due() == {"overdue": 0, "within_48h": 1, "later": 1}
    await export_complaints(svc.pool, metrics, early.due_at)
    assert open_by_due() == {"overdue": 1, "within_48h": 0, "later": 1}
