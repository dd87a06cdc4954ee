"""Notifications on the real PostgreSQL and Redis, delivered to a real aiohttp server (the
webhook) and a real SMTP server (aiosmtpd); every instant is pinned."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from notify import contacts
from notify.errors import NotifyError
from notify.mail_settings import SmtpSettings
from notify.metrics import NotifyMetrics
from notify.notices import enqueue, list_notices
from notify.settings import NotifySettings
from notify.worker import tick
from runtime.services import Services
from tests.conftest import AccountFactory

T0 = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # the night Warsaw moves its clocks
PLN = 1_000_000
SECRET = "s3cret"


@dataclass
class Hook:
    """A real HTTP receiver: answers with the statuses queued, then 200; checks signatures."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        t, v1 = (p.split("=", 1)[1] for p in request.headers["X-Tollgate-Signature"].split(","))
        good = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, v1):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.received.append({"t": int(t), **json.loads(body)})
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    app = web.Application()
    app.router.add_post("/hook", h.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    h.url = f"http://127.0.0.1:{port}/hook"
    yield h
    await runner.cleanup()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    # aiosmtpd calls its handler's methods by these names
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(found, EmailMessage)
        self.messages.append(found)
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks its own port, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        inbox.port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def notify_settings(**changes: Any) -> NotifySettings:
    return replace(NotifySettings(webhook_secret=SECRET), **changes)


async def _contact(svc: Services, account: str, now: datetime = T0, **fields: Any) -> None:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await contacts.put(conn, contacts.Contact(account, **fields), now)


async def _notices(svc: Services, account: str) -> list[Any]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return sorted(await list_notices(conn, account), key=lambda n: n.id)


async def _move(svc: Services, account: str, amount: int, at: datetime) -> None:
    await svc.accounts.add_entry(account, "adjustment" if amount < 0 else "topup", amount, at=at)


async def test_one_notice_per_crossing_however_the_balance_hovers(
    svc: Services, make_account: AccountFactory, hook: Hook
) -> None:
    acct = await make_account(balance=15 * PLN, at=T0)
    await _contact(svc, acct.id, webhook_url=hook.url, language="en")
    settings = notify_settings()
    steps: list[tuple[int, int]] = [  # (move, notices created by the pass after it)
        (0, 0),  # 15 PLN: above both thresholds
        (-6 * PLN, 1),  # 9 PLN: below 10, one low-balance notice
        (0, 0),  # still below: nothing new
        (1 * PLN, 0),  # exactly 10: neither below nor above, not re-armed
        (-500_000, 0),  # 9.50: hovering, nothing
        (1_500_001, 0),  # 11.000001: above again, re-armed, no notice
        (-2 * PLN, 1),  # 9.000001: a second crossing, a second notice
        (-10 * PLN, 1),  # -0.999999: negative (the 10 PLN one is still below)
        (-1 * PLN, 0),  # more negative: nothing
    ]
    now = T0
    for move, expected in steps:
        now += timedelta(minutes=10)
        if move:
            await _move(svc, acct.id, move, now)
        result = await tick(svc, settings, now)
        assert result["created"] == expected, (move, result)
    found = await _notices(svc, acct.id)
    assert [(n.kind, n.status, n.channel) for n in found] == [
        ("low_balance", "sent", "webhook"),
        ("low_balance", "sent", "webhook"),
        ("balance_negative", "sent", "webhook"),
    ]
    assert [r["kind"] for r in hook.received] == ["low_balance", "low_balance", "balance_negative"]
    assert hook.received[0]["data"]["balance_micro"] == 9 * PLN
    assert "9.00 PLN" in hook.received[0]["body"] and "10.00 PLN" in hook.received[0]["body"]
    assert "-1.00 PLN" in hook.received[2]["body"]  # cut down, never rounded toward zero
    assert hook.bad_signatures == 0


async def test_two_workers_racing_see_one_crossing(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(balance=5 * PLN, at=T0)
    settings = notify_settings()
    from notify.worker import scan

    counts = await asyncio.gather(*(scan(svc, settings, T0) for _ in range(4)))
    assert sum(counts) == 1  # low balance only once; no channel, so recorded as failed
    (notice,) = await _notices(svc, acct.id)
    assert (notice.kind, notice.channel, notice.status) == ("low_balance", "none", "failed")
    assert "no e-mail address or webhook" in notice.last_error


async def test_webhook_retries_with_backoff_then_delivers(
    svc: Services, make_account: AccountFactory, hook: Hook
) -> None:
    acct = await make_account(balance=5 * PLN, at=T0)
    await _contact(svc, acct.id, webhook_url=hook.url)
    hook.statuses = [503, 500]
    settings = notify_settings(retry_base_s=60)
    first = await tick(svc, settings, T0)
    assert (first["created"], first["retried"], first["sent"]) == (1, 1, 0)
    (n,) = await _notices(svc, acct.id)
    assert (n.status, n.attempts, n.last_error) == ("pending", 1, "HTTP 503")
    assert n.next_attempt_at == T0 + timedelta(seconds=60)
    early = await tick(svc, settings, T0 + timedelta(seconds=59))
    assert (early["sent"], early["retried"]) == (0, 0)  # not due yet
    second = await tick(svc, settings, T0 + timedelta(seconds=60))
    assert second["retried"] == 1
    (n,) = await _notices(svc, acct.id)
    assert n.next_attempt_at == T0 + timedelta(seconds=60 + 120)  # doubled
    metrics = NotifyMetrics(CollectorRegistry())
    third = await tick(svc, settings, T0 + timedelta(seconds=180), metrics=metrics)
    assert third["sent"] == 1
    sample = metrics.registry.get_sample_value
    assert sample("tollgate_notice_deliveries_total", {"result": "sent"}) == 1
    assert sample("tollgate_notices", {"status": "sent"}) == 1
    assert sample("tollgate_notices", {"status": "pending"}) == 0
    (n,) = await _notices(svc, acct.id)
    assert (n.status, n.attempts, n.sent_at) == ("sent", 3, T0 + timedelta(seconds=180))
    # every try carried the same notice, signed at the instant of the try
    assert {r["id"] for r in hook.received} == {n.id}
    assert [r["t"] for r in hook.received] == [
        int((T0 + timedelta(seconds=s)).timestamp()) for s in (0, 60, 180)
    ]
    assert hook.received[0]["language"] == "pl" and "Saldo konta" in hook.received[0]["body"]


async def test_webhook_gives_up(svc: Services, make_account: AccountFactory, hook: Hook) -> None:
    permanent = await make_account(balance=5 * PLN, at=T0)
    await _contact(svc, permanent.id, webhook_url=hook.url)
    hook.statuses = [404]
    await tick(svc, notify_settings(), T0)
    (n,) = await _notices(svc, permanent.id)
    assert (n.status, n.attempts, n.last_error) == ("failed", 1, "HTTP 404")

    down = await make_account(balance=5 * PLN, at=T0)
    await _contact(svc, down.id, webhook_url="http://127.0.0.1:9/nobody-listens")
    settings = notify_settings(max_attempts=2)
    await tick(svc, settings, T0)
    await tick(svc, settings, T0 + timedelta(hours=1))
    (n,) = await _notices(svc, down.id)
    assert (n.status, n.attempts) == ("failed", 2)
    assert "Connect" in n.last_error


async def test_unsigned_webhooks_are_never_sent(
    svc: Services, make_account: AccountFactory, hook: Hook
) -> None:
    acct = await make_account(balance=5 * PLN, at=T0)
    await _contact(svc, acct.id, webhook_url=hook.url)
    await tick(svc, notify_settings(webhook_secret=""), T0)
    (n,) = await _notices(svc, acct.id)
    assert n.status == "pending" and "WEBHOOK_SECRET" in n.last_error
    assert hook.received == []


async def test_email_in_the_customers_language(
    svc: Services, make_account: AccountFactory, smtp: Any
) -> None:
    acct = await make_account(balance=5 * PLN, at=T0)
    await _contact(svc, acct.id, email="jan@example.pl", language="pl")
    settings = notify_settings(smtp=SmtpSettings("127.0.0.1", smtp.port, sender="bok@op.pl"))
    result = await tick(svc, settings, T0)
    assert result["sent"] == 1
    (mail,) = smtp.messages
    assert mail["To"] == "jan@example.pl" and mail["From"] == "bok@op.pl"
    assert mail["Subject"] == f"Niskie saldo konta {acct.id}"
    assert mail["Content-Language"] == "pl"
    body = mail.get_content()
    assert "spadło poniżej 10,00 PLN i wynosi 5,00 PLN" in body


async def test_language_given_beats_the_accounts_then_the_default(
    svc: Services, make_account: AccountFactory
) -> None:
    assert svc.pool is not None
    acct = await make_account(balance=5 * PLN, at=T0)
    data = {"account": acct.id, "currency": "PLN", "balance_micro": 0, "threshold_micro": 0}
    settings = notify_settings(language="en")
    async with svc.pool.acquire() as conn:
        bare = await contacts.get(conn, acct.id)
        await enqueue(conn, settings, bare, "balance_negative", data, "default", T0)
        await enqueue(
            conn, settings, replace(bare, language="pl"), "balance_negative", data, "acct", T0
        )
        await enqueue(
            conn,
            settings,
            replace(bare, language="pl"),
            "balance_negative",
            data,
            "given",
            T0,
            language="en",
        )
    assert [n.language for n in await _notices(svc, acct.id)] == ["en", "pl", "en"]


async def test_opt_out_only_where_allowed(
    svc: Services, make_account: AccountFactory, hook: Hook
) -> None:
    acct = await make_account(balance=15 * PLN, at=T0)
    with pytest.raises(NotifyError) as refused:
        await _contact(svc, acct.id, webhook_url=hook.url, opted_out=("balance_negative",))
    assert refused.value.code == "OPT_OUT_NOT_ALLOWED"
    await _contact(svc, acct.id, webhook_url=hook.url, opted_out=("low_balance",))
    await tick(svc, notify_settings(), T0)
    await _move(svc, acct.id, -16 * PLN, T0)
    await tick(svc, notify_settings(), T0 + timedelta(minutes=1))
    kinds = {n.kind: n.status for n in await _notices(svc, acct.id)}
    assert kinds == {"low_balance": "opted_out", "balance_negative": "sent"}
    assert [r["kind"] for r in hook.received] == ["balance_negative"]


async def test_per_account_thresholds_and_bad_contacts(
    svc: Services, make_account: AccountFactory
) -> None:
    acct = await make_account(balance=30 * PLN, at=T0)
    await _contact(svc, acct.id, thresholds=(50 * PLN,))
    assert (await tick(svc, notify_settings(), T0))["created"] == 1
    for bad, named in (
        ({"email": "not-an-address"}, "email"),
        ({"webhook_url": "ftp://x"}, "webhook_url"),
        ({"language": "de"}, "language"),
        ({"opted_out": ("nonsense",)}, "kind"),
    ):
        with pytest.raises(NotifyError) as err:
            await _contact(svc, acct.id, **bad)
        assert err.value.field == named
    with pytest.raises(NotifyError) as unknown:
        await _contact(svc, "nobody")
    assert unknown.value.code == "UNKNOWN_ACCOUNT"


def _cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env |= {
        "TOLLGATE_PG_DSN": settings.pg_dsn,
        "TOLLGATE_REDIS_URL": settings.redis_url,
        "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(settings.keyspace.shards),
    }
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "notify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_set_run_list(svc: Services, make_account: AccountFactory) -> None:
    acct = await make_account(balance=5 * PLN, at=T0)
    bad = await asyncio.to_thread(_cli, svc.settings, "set", acct.id, "--email", "x@")
    assert bad.returncode == 2 and bad.stderr == "tollgate: email: not an e-mail address: 'x@'\n"
    refused = await asyncio.to_thread(
        _cli, svc.settings, "set", acct.id, "--opt-out", "balance_negative"
    )
    assert refused.returncode == 2 and "must receive" in refused.stderr
    ok = await asyncio.to_thread(
        _cli, svc.settings, "set", acct.id, "--thresholds", "20,0", "--language", "en"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["thresholds"] == [20 * PLN, 0]
    ran = await asyncio.to_thread(_cli, svc.settings, "run", "--now", "2026-03-29T01:30:00+01:00")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["created"] == 1
    listed = await asyncio.to_thread(_cli, svc.settings, "list", "--account", acct.id)
    (notice,) = json.loads(listed.stdout)
    assert (notice["kind"], notice["language"], notice["status"]) == ("low_balance", "en", "failed")
    assert notice["created_at"] == "2026-03-29T00:30:00+00:00"


async def test_complaint_receipt_and_answer_are_notified_once(
    svc: Services, make_account: AccountFactory, hook: Hook
) -> None:
    from billing.complaints import Filing, answer, file
    from billing.settings import BillingSettings

    assert svc.pool is not None
    acct = await make_account(balance=50 * PLN, at=T0)
    await _contact(svc, acct.id, webhook_url=hook.url)
    async with svc.pool.acquire() as conn:
        c = await file(
            conn,
            Filing(acct.id, T0 - timedelta(days=2), "za dużo", ("sw/1",), requested=PLN),
            14,
            T0,
        )
    settings = notify_settings()
    assert (await tick(svc, settings, T0))["created"] == 1
    assert (await tick(svc, settings, T0 + timedelta(minutes=1)))["created"] == 0
    # filed 28 March 23:30 UTC = 29 March 00:30 in Warsaw: answer by the end of 12 April
    assert "do 2026-04-12 (koniec dnia)" in hook.received[0]["body"]
    async with svc.pool.acquire() as conn:
        await answer(svc.accounts, conn, BillingSettings(), c.id, False, "Połączenia były.", T0)
    assert (await tick(svc, settings, T0 + timedelta(minutes=2)))["created"] == 1
    assert (await tick(svc, settings, T0 + timedelta(minutes=3)))["created"] == 0
    received, answered = hook.received
    assert (received["kind"], answered["kind"]) == ("complaint_received", "complaint_answered")
    assert "nieuwzględniona; odwołanie można wnieść w ciągu 14 dni" in answered["body"]
    assert "Połączenia były." in answered["body"] and "0,00 PLN" in answered["body"]
