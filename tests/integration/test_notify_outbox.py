"""Notices' e-mail goes through the documents' outbox with the one SMTP configuration
(TOLLGATE_SMTP_*; the notices' former variables are aliases), on the real PostgreSQL and a
real SMTP server; every instant is pinned."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.env import SettingsError
from notify import contacts
from notify.delivery import deliver_due
from notify.mail_settings import SmtpSettings
from notify.notices import enqueue, list_notices, outbox_key
from notify.settings import NotifySettings
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_notify import smtp  # noqa: F401  (the SMTP server fixture)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_the_notices_former_smtp_variables_are_aliases() -> None:
    old = {
        "TOLLGATE_NOTIFY_SMTP_HOST": "mail.example",
        "TOLLGATE_NOTIFY_SMTP_PORT": "587",
        "TOLLGATE_NOTIFY_SMTP_USER": "u",
        "TOLLGATE_NOTIFY_SMTP_PASSWORD": "p",
    }
    s = SmtpSettings.from_env(old)
    assert (s.host, s.port, s.user, s.password) == ("mail.example", 587, "u", "p")
    # the notices' mailer defaulted to STARTTLS and this sender
    assert (s.starttls, s.tls, s.sender) == (True, False, "tollgate@localhost")
    s = SmtpSettings.from_env({**old, "TOLLGATE_NOTIFY_SMTP_TLS": "tls"})
    assert (s.starttls, s.tls) == (False, True)
    s = SmtpSettings.from_env({**old, "TOLLGATE_NOTIFY_MAIL_FROM": "bok@op.pl"})
    assert s.sender == "bok@op.pl"
    new = SmtpSettings.from_env(
        {**old, "TOLLGATE_SMTP_HOST": "smtp.op.pl", "TOLLGATE_SMTP_FROM": "faktury@op.pl"}
    )
    assert (new.host, new.sender) == ("smtp.op.pl", "faktury@op.pl")  # the new name wins
    with pytest.raises(SettingsError) as err:
        SmtpSettings.from_env({**old, "TOLLGATE_NOTIFY_SMTP_TLS": "ssl"})
    assert err.value.variable == "TOLLGATE_NOTIFY_SMTP_TLS"
    assert NotifySettings.from_env(old).smtp == SmtpSettings.from_env(old)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_email_notice_goes_through_the_outbox_and_follows_its_message(
    svc: Services,
    make_account: AccountFactory,
    smtp: Any,  # noqa: F811
) -> None:
    assert svc.pool is not None
    acct = await make_account(at=T0)
    async with svc.pool.acquire() as conn:
        contact = await contacts.put(
            conn, contacts.Contact(acct.id, language="en", email="jan@example.pl"), T0
        )
        data = {"account": acct.id, "currency": "PLN", "balance_micro": -1, "threshold_micro": 0}
        (nid,) = await enqueue(conn, NotifySettings(), contact, "balance_negative", data, "k", T0)
        row = await conn.fetchrow("select * from mail_outbox where key = $1", outbox_key(nid))
    assert row is not None and row["recipient"] == "jan@example.pl" and row["language"] == "en"

    down = NotifySettings(smtp=SmtpSettings("127.0.0.1", closed_port(), sender="bok@op.pl"))
    first = await deliver_due(svc.pool, down, T0)
    assert (first.sent, first.retried, first.failed) == (0, 1, 0)
    async with svc.pool.acquire() as conn:
        (n,) = await list_notices(conn, acct.id)
    assert (n.status, n.attempts) == ("pending", 1) and n.last_error
    retry_at = n.next_attempt_at
    assert retry_at == T0 + timedelta(seconds=SmtpSettings().backoff_s)  # the outbox's backoff

    up = NotifySettings(smtp=SmtpSettings("127.0.0.1", smtp.port, sender="bok@op.pl"))
    assert (await deliver_due(svc.pool, up, retry_at - timedelta(seconds=1))).sent == 0
    assert (await deliver_due(svc.pool, up, retry_at)).sent == 1
    async with svc.pool.acquire() as conn:
        (n,) = await list_notices(conn, acct.id)
    assert (n.status, n.attempts, n.sent_at, n.last_error) == ("sent", 2, retry_at, "")
    (mail,) = smtp.messages
    assert mail["From"] == "bok@op.pl" and mail["To"] == "jan@example.pl"
    assert mail["Content-Language"] == "en" and mail["X-Tollgate-Key"] == outbox_key(nid)
    assert mail["Subject"] == f"Negative balance on account {acct.id}"
    assert (await deliver_due(svc.pool, up, retry_at)).sent == 0  # once


class Refusing:
    """An SMTP server that refuses every recipient (550), as for a mailbox that is gone."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 no such mailbox"


async def test_a_refused_recipient_fails_the_notice_at_once(
    svc: Services, make_account: AccountFactory
) -> None:
    from aiosmtpd.controller import Controller

    assert svc.pool is not None
    acct = await make_account(at=T0)
    async with svc.pool.acquire() as conn:
        contact = await contacts.put(
            conn, contacts.Contact(acct.id, language="pl", email="gone@example.pl"), T0
        )
        data = {"account": acct.id, "currency": "PLN", "balance_micro": -1, "threshold_micro": 0}
        await enqueue(conn, NotifySettings(), contact, "balance_negative", data, "k", T0)
    port = closed_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        refusing = NotifySettings(smtp=SmtpSettings("127.0.0.1", port, sender="bok@op.pl"))
        done = await deliver_due(svc.pool, refusing, T0)
    finally:
        controller.stop()
    assert (done.sent, done.retried, done.failed) == (0, 0, 1)
    async with svc.pool.acquire() as conn:
        (n,) = await list_notices(conn, acct.id)
    assert (n.status, n.attempts) == ("failed", 1) and "no such mailbox" in n.last_error
