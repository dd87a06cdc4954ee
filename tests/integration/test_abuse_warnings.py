"""Warn, then suspend (terms §5.1) and closure proposed on a repeat (acceptable-use policy),
on the real Redis and PostgreSQL with a real SMTP server: synthetic CDR streams at pinned
event times, the scheduler's deadline job run at pinned instants."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from abuse import findings, warnings
from abuse.cli_args import register
from abuse.detectors import DETECTORS
from abuse.findings import Finding, FindingStateError, Status
from abuse.runner import AbuseDetector
from abuse.settings import Action
from notify import contacts
from notify.abuse import scan as scan_resumed
from notify.delivery import deliver_due
from notify.mail_settings import SmtpSettings
from notify.notices import Notice, list_notices
from notify.settings import NotifySettings
from rating.deck import Deck
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_abuse import (
    authorize,
    dialler_minute,
    one,
    publish,
    robocalls,
    status_everywhere,
)
from tests.integration.test_notify import smtp  # noqa: F401  (the SMTP server fixture)
from tollgate.scheduler import SchedulerMetrics, SchedulerSettings, job_abuse_deadlines, tick

PLN = 1_000_000
Make = Callable[..., AbuseDetector]
CALLER = "+48225550000"
# robocalls from one caller also look like autodialling: one rule at a time here
BROADCAST_ONLY = {
    "autodialing": DETECTORS["autodialing"].defaults().merged({"enabled": False}, "autodialing")
}
ZONE = ZoneInfo("Europe/Warsaw")


def day_start(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def finding_of(svc: Services, account: str, rule: str) -> Finding:
    assert svc.pool is not None
    return one(await findings.list_findings(svc.pool, account=account), rule)


async def notices(svc: Services, account: str, kind: str | None = None) -> list[Notice]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        found = await list_notices(conn, account)
    return [n for n in found if kind is None or n.kind == kind]


async def with_email(svc: Services, account: str, language: str = "pl") -> None:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await contacts.put(
            conn,
            contacts.Contact(account, language=language, email=f"{account}@example.pl"),
            datetime.now(UTC),
        )


async def deadlines(svc: Services, now: datetime) -> dict[str, str]:
    return await tick(
        svc,
        SchedulerSettings(),
        SchedulerMetrics(),
        now,
        {"abuse_deadlines": job_abuse_deadlines},
    )


async def events(svc: Services, finding_id: int) -> list[str]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return [e.event for e in await findings.timeline(conn, finding_id)]


async def test_warned_then_suspended_when_it_goes_on_past_the_deadline(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    smtp: Any,  # noqa: F811
) -> None:
    assert svc.pool is not None
    a = await make_account(balance=10 * PLN)
    await with_email(svc, a.id)
    d = abuse_detector(warn_deadline_h=2, rules=BROADCAST_ONLY)
    t0 = day_start(1) + timedelta(hours=1)  # 02:00 in Warsaw, yesterday
    await publish(svc, robocalls(a.id, ms(t0), CALLER))
    await d.drain_once()

    f = await finding_of(svc, a.id, "broadcasting")
    assert (f.action, f.suspended, f.closure) == (Action.WARN, False, None)
    assert f.warned_at is not None and t0 < f.warned_at < t0 + timedelta(minutes=30)
    assert f.deadline_at == f.warned_at + timedelta(hours=2)
    assert await status_everywhere(svc, a.id) == ("active", "active")
    (warning,) = await notices(svc, a.id)
    assert (warning.kind, warning.channel, warning.status) == ("abuse_warning", "email", "pending")

    # the deadline passes and nothing more happened: no suspension
    assert await deadlines(svc, f.deadline_at + timedelta(hours=1)) == {}
    assert await status_everywhere(svc, a.id) == ("active", "active")

    # the same broadcasting an hour after the deadline (same UTC day: the same finding)
    await publish(svc, robocalls(a.id, ms(f.deadline_at + timedelta(hours=1)), CALLER))
    await d.drain_once()
    f = await finding_of(svc, a.id, "broadcasting")
    assert f.last_seen_at is not None and f.last_seen_at > f.deadline_at
    assert await status_everywhere(svc, a.id) == ("active", "active")  # the scheduler decides
    assert len(await notices(svc, a.id, "abuse_warning")) == 1  # warned once

    at = f.deadline_at + timedelta(hours=2)
    assert await deadlines(svc, at) == {
        "abuse_deadlines": f"suspended after the deadline: #{f.id} {a.id}"
    }
    assert await deadlines(svc, at + timedelta(minutes=1)) == {}  # once
    assert await status_everywhere(svc, a.id) == ("suspended", "suspended")
    f = await finding_of(svc, a.id, "broadcasting")
    assert (f.action, f.suspended) == (Action.SUSPEND, True)
    assert await events(svc, f.id) == ["created", "warn", "suspend"]
    refused = await authorize(svc, a.id, "0601234567")
    assert (refused.decision.value, refused.reason) == ("DENY", "ACCOUNT_SUSPENDED")
    emergency = await authorize(svc, a.id, "112")
    assert (emergency.decision.value, emergency.reason) == ("ALLOW", "EMERGENCY")

    # both notices reach the customer's mailbox, in Polish, the deadline in Warsaw time
    settings = NotifySettings(smtp=SmtpSettings("127.0.0.1", smtp.port, sender="bok@op.pl"))
    assert (await deliver_due(svc.pool, settings, at)).sent == 2
    warned_mail, suspended_mail = sorted(smtp.messages, key=lambda m: m["Subject"])
    assert warned_mail["Subject"] == f"Wezwanie do zaprzestania naruszeń na koncie {a.id}"
    local = f.deadline_at.astimezone(ZONE)
    assert f"do {local:%Y-%m-%d %H:%M} Europe/Warsaw" in warned_mail.get_content()
    assert "masowe rozsyłanie faksów" in warned_mail.get_content()
    assert suspended_mail["Subject"] == f"Zawieszenie połączeń wychodzących na koncie {a.id}"
    assert "trwało po terminie" in suspended_mail.get_content()

    # lifting resumes the account; the customer sees the whole timeline
    _, resumed = await findings.lift(svc.pool, svc.accounts, f.id, "eve", "talked to them")
    assert resumed
    assert await scan_resumed(svc.pool, settings, at) == 1
    assert await scan_resumed(svc.pool, settings, at) == 0  # once
    (told,) = await notices(svc, a.id, "abuse_resumed")
    assert told.subject == f"Przywrócenie połączeń wychodzących na koncie {a.id}"
    stranger = await make_account()
    steps = ["detected", "warned", "suspended", "lifted", "resumed"]
    await customer_sees(svc, a.id, f, steps, stranger.id)


async def test_a_next_day_finding_continues_the_warning_and_counts_after_the_deadline(
    svc: Services, retail: Deck, make_account: AccountFactory, abuse_detector: Make
) -> None:
    a = await make_account(balance=10 * PLN)
    await with_email(svc, a.id, "en")
    d = abuse_detector(warn_deadline_h=30, rules=BROADCAST_ONLY)
    t0 = day_start(2) + timedelta(hours=1)
    await publish(svc, robocalls(a.id, ms(t0), CALLER))
    await d.drain_once()
    f = await finding_of(svc, a.id, "broadcasting")
    assert f.deadline_at is not None

    # the next UTC day, before the deadline: a new finding, linked to the warning, no notice
    await publish(svc, robocalls(a.id, ms(t0 + timedelta(days=1)), CALLER))
    await d.drain_once()
    assert svc.pool is not None
    both = await findings.list_findings(svc.pool, account=a.id, rule="broadcasting")
    (g,) = [x for x in both if x.id != f.id]
    assert (g.warning_id, g.action, g.warned_at) == (f.id, Action.WARN, None)
    assert g.closure is None  # going on within the deadline is not a repeat
    assert len(await notices(svc, a.id, "abuse_warning")) == 1
    assert await events(svc, f.id) == ["created", "warn", "continued"]
    assert await deadlines(svc, f.deadline_at + timedelta(minutes=1)) == {}
    assert await status_everywhere(svc, a.id) == ("active", "active")

    # the same day, after the deadline: the linked finding's hit suspends the account
    await publish(svc, robocalls(a.id, ms(f.deadline_at + timedelta(minutes=30)), CALLER))
    await d.drain_once()
    ran = await deadlines(svc, f.deadline_at + timedelta(hours=1))
    assert ran == {"abuse_deadlines": f"suspended after the deadline: #{f.id} {a.id}"}
    assert await status_everywhere(svc, a.id) == ("suspended", "suspended")
    (n,) = await notices(svc, a.id, "abuse_suspended")
    assert n.language == "en" and n.subject == f"Outgoing calls suspended on account {a.id}"


async def test_critical_suspends_at_once_and_a_repeat_proposes_closure(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert svc.pool is not None
    d = abuse_detector()
    a, b = await make_account(balance=10 * PLN), await make_account(balance=10 * PLN)
    t0 = day_start(3) + timedelta(hours=9)
    for acct in (a, b):
        await publish(svc, dialler_minute(acct.id, ms(t0)))
    await d.drain_once()
    for acct in (a, b):
        first = await finding_of(svc, acct.id, "autodialing")
        assert (first.action, first.suspended) == (Action.SUSPEND, True)
        assert await status_everywhere(svc, acct.id) == ("suspended", "suspended")
        kinds = sorted(n.kind for n in await notices(svc, acct.id))
        assert kinds == ["abuse_suspended", "abuse_warning"]  # warned, then critical
        assert first.closure is None  # a first offence
        await findings.lift(svc.pool, svc.accounts, first.id, "eve", "promised to stop")
        assert await status_everywhere(svc, acct.id) == ("active", "active")
        # abuse again within the repeat window: warned and a closure proposed
        await publish(svc, robocalls(acct.id, ms(t0 + timedelta(days=1)), CALLER))
    await d.drain_once()
    assert metric(d, "tollgate_abuse_closures_proposed_total") == 2
    proposed = await findings.list_findings(svc.pool, closure="proposed")
    assert sorted(p.account for p in proposed) == sorted([a.id, b.id])

    parser = argparse.ArgumentParser(prog="tollgate")
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(["abuse", *argv])
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    (rep_a,) = [p for p in proposed if p.account == a.id]
    assert (rep_a.action, rep_a.closure) == (Action.WARN, "proposed")
    shown = await run("show", str(rep_a.id))
    assert [e["event"] for e in shown["timeline"]] == ["created", "closure_proposed", "warn"]
    rejected = await run("closure", str(rep_a.id), "reject", "--by", "eve", "--now", NOW)
    assert rejected["closure"] == "rejected" and rejected["status"] == "open"
    from tollgate.cli import CliError

    with pytest.raises(CliError):
        await run("closure", str(rep_a.id), "accept")  # decided already
    assert await status_everywhere(svc, a.id) == ("active", "active")

    # b's closure accepted by an operator in the panel: the account is closed
    (rep_b,) = [p for p in proposed if p.account == b.id]
    from panel_api.tokens import Role
    from tests.panel import bearer, panel_client, token

    op = bearer(await token(svc, Role.OPERATOR))
    cust = bearer(await token(svc, Role.CUSTOMER, b.id))
    async with panel_client(svc.settings) as client:
        path = f"/api/v1/findings/{rep_b.id}/accept-closure"
        assert (await client.post(path, json={"reason": "x"}, headers=cust)).status == 403
        done = await client.post(path, json={"reason": "second time"}, headers=op)
        assert done.status == 200, await done.text()
        body = await done.json()
        assert (body["closure"], body["status"]) == ("accepted", "closed")
        again = await client.post(path, json={}, headers=op)
        assert again.status == 409
        seen = await client.get(f"/api/v1/findings/{rep_b.id}", headers=op)
        timeline = [e["event"] for e in (await seen.json())["timeline"]]
        assert timeline == ["created", "closure_proposed", "warn", "closure_accepted", "closed"]
    assert await status_everywhere(svc, b.id) == ("closed", "closed")
    rep_b = await findings.get(svc.pool, rep_b.id)
    steps = ["detected", "warned", "account_closed", "closed"]
    await customer_sees(svc, b.id, rep_b, steps, a.id)


async def test_a_false_alarm_is_no_earlier_episode_for_the_repeat_rule(
    svc: Services,
    retail: Deck,
    make_account: AccountFactory,
    abuse_detector: Make,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Lifted as a false alarm (CLI --false-alarm, panel false_alarm): abuse of the same
    account within the window is a first offence again (the lift without it: the test
    above proposes closure)."""
    assert svc.pool is not None
    d = abuse_detector()
    a, b = await make_account(balance=10 * PLN), await make_account(balance=10 * PLN)
    t0 = day_start(3) + timedelta(hours=9)
    for acct in (a, b):
        await publish(svc, dialler_minute(acct.id, ms(t0)))
    await d.drain_once()
    first_a = await finding_of(svc, a.id, "autodialing")
    first_b = await finding_of(svc, b.id, "autodialing")
    assert first_a.suspended and first_b.suspended

    parser = argparse.ArgumentParser(prog="tollgate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["abuse", "lift", str(first_a.id), "--false-alarm", "--by", "eve"])
    capsys.readouterr()
    await args.run(svc, args)
    lifted = json.loads(capsys.readouterr().out)
    assert (lifted["status"], lifted["false_alarm"], lifted["account_resumed"]) == (
        "lifted",
        True,
        True,
    )

    from panel_api.tokens import Role
    from tests.panel import bearer, panel_client, token

    op = bearer(await token(svc, Role.OPERATOR))
    async with panel_client(svc.settings) as client:
        base = f"/api/v1/findings/{first_b.id}"
        wrong = await client.post(f"{base}/acknowledge", json={"false_alarm": True}, headers=op)
        assert wrong.status == 400, await wrong.text()
        done = await client.post(
            f"{base}/lift", json={"reason": "test calls", "false_alarm": True}, headers=op
        )
        assert done.status == 200, await done.text()
        assert (await done.json())["false_alarm"] is True
        seen = await client.get(base, headers=op)
        (lift_event,) = [e for e in (await seen.json())["timeline"] if e["event"] == "lifted"]
        assert lift_event["detail"]["false_alarm"] is True
    for acct in (a, b):
        assert await status_everywhere(svc, acct.id) == ("active", "active")
        await publish(svc, robocalls(acct.id, ms(t0 + timedelta(days=1)), CALLER))
    await d.drain_once()
    assert metric(d, "tollgate_abuse_closures_proposed_total") == 0
    for acct in (a, b):
        again = await finding_of(svc, acct.id, "broadcasting")
        assert (again.action, again.closure) == (Action.WARN, None)  # a first offence again


async def test_closure_decisions_refuse_findings_without_a_proposal(
    svc: Services, make_account: AccountFactory, abuse_detector: Make
) -> None:
    assert svc.pool is not None
    a = await make_account()
    await publish(svc, robocalls(a.id, ms(day_start(1) + timedelta(hours=3)), CALLER))
    await abuse_detector().drain_once()
    f = await finding_of(svc, a.id, "broadcasting")
    with pytest.raises(FindingStateError) as err:
        await warnings.decide_closure(
            svc.pool, svc.accounts, f.id, True, "eve", "", datetime.now(UTC)
        )
    assert "closure not proposed" in str(err.value)
    assert (await finding_of(svc, a.id, "broadcasting")).status is Status.OPEN


NOW = "2026-12-01T12:00:00+00:00"


def metric(d: AbuseDetector, name: str) -> float:
    return d.metrics.registry.get_sample_value(name) or 0.0


async def customer_sees(
    svc: Services, account: str, f: Finding, steps: list[str], stranger: str
) -> None:
    """The account's customer reads the finding's timeline in the panel; another does not."""
    from panel_api.tokens import Role
    from tests.panel import bearer, panel_client, token

    mine = bearer(await token(svc, Role.CUSTOMER, account))
    other = bearer(await token(svc, Role.CUSTOMER, stranger))
    async with panel_client(svc.settings) as client:
        got = await client.get(f"/api/v1/accounts/{account}/findings", headers=mine)
        assert got.status == 200, await got.text()
        (item,) = [x for x in (await got.json())["items"] if x["id"] == f.id]
        assert [e["event"] for e in item["timeline"]] == steps
        assert "evidence" not in item and all("who" not in e for e in item["timeline"])
        if f.deadline_at is not None:
            (warned,) = [e for e in item["timeline"] if e["event"] == "warned"]
            assert datetime.fromisoformat(warned["deadline"]) == f.deadline_at
        theirs = await client.get(f"/api/v1/accounts/{account}/findings", headers=other)
        assert theirs.status in (403, 404)
