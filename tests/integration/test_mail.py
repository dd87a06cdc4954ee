"""E-mail of documents through a real SMTP server (aiosmtpd, started here): the message,
its PDF attachment and its headers; a server that is down means retries with backoff, a
metric, and finally a failed mark, never a lost or doubled message. Instants are fixed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from billing.documents import Draft, Kind, Line, issue
from billing.mailing import queue_documents
from billing.pdf import PdfSettings
from billing.settings import BillingSettings
from notify.mail_metrics import MailMetrics
from notify.mail_settings import SmtpSettings
from notify.sender import deliver_due
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_documents import customer_for, pdf_text
from tests.smtp import Sink, free_port
from tests.unit.test_invoice_parts import SELLER

PLN = 1_000_000


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Warsaw")).astimezone(UTC)


@pytest.fixture(autouse=True)
async def _tables(svc: Services) -> AsyncIterator[None]:
    assert svc.pool is not None
    await svc.pool.execute(
        "truncate mail_outbox, billing_documents, document_series, customer_events,"
        " customers cascade"
    )
    yield


SMTP = SmtpSettings(
    host="127.0.0.1", sender="faktury@operator.example", backoff_s=60, max_attempts=3
)


async def issued(svc: Services, make_account: AccountFactory) -> str:
    acct = await make_account(at=local("2026-11-01T10:00"))
    await customer_for(svc, acct.id)
    settings = BillingSettings.from_env(SELLER)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        doc, _ = await issue(
            conn,
            Draft(
                Kind.INVOICE,
                acct.id,
                f"invoice/{acct.id}/2026-11",
                "PLN",
                local("2026-11-30T12:00").date(),
                (Line("Połączenia", 61_350_000),),
                payment_method="transfer",
            ),
            settings,
            local("2026-12-01T00:30"),
        )
    return doc.number


async def test_a_document_is_mailed_once_with_its_pdf(
    svc: Services, make_account: AccountFactory, smtp_sink: tuple[Sink, int], tmp_path: Path
) -> None:
    sink, port = smtp_sink
    number = await issued(svc, make_account)
    now = local("2026-12-01T01:00")
    settings = BillingSettings.from_env(SELLER)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        first = await queue_documents(conn, settings, PdfSettings(), now)
        again = await queue_documents(conn, settings, PdfSettings(), now)
    assert (first.queued, again.queued) == ([number], [])
    registry = CollectorRegistry()
    report = await deliver_due(svc.pool, replace(SMTP, port=port), MailMetrics(registry), now)
    assert report.sent == [f"document/{number}"] and report.pending == 0
    assert (
        await deliver_due(svc.pool, replace(SMTP, port=port), MailMetrics(CollectorRegistry()), now)
    ).sent == []
    [(mail_from, rcpt, msg)] = sink.messages
    assert mail_from == "faktury@operator.example" and rcpt == ["faktury@example.com"]
    assert msg["Subject"] == f"Faktura VAT {number}"
    assert msg["To"] == "faktury@example.com" and msg["Message-ID"].endswith("@operator.example>")
    assert msg["Date"] == "Tue, 01 Dec 2026 00:00:00 +0000"
    assert "Kwota: 61,35 PLN" in msg.get_body(("plain",)).get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == number.replace("/", "-") + ".pdf"
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(attachment.get_content())
    assert f"Faktura VAT nr {number}" in pdf_text(pdf)
    assert registry.get_sample_value("tollgate_mail_total", {"outcome": "sent"}) == 1


async def test_a_server_that_is_down_means_retries_a_metric_then_failed(
    svc: Services, make_account: AccountFactory, smtp_sink: tuple[Sink, int]
) -> None:
    sink, _port = smtp_sink
    number = await issued(svc, make_account)
    now = local("2026-12-01T01:00")
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await queue_documents(conn, BillingSettings.from_env(SELLER), PdfSettings(), now)
    registry = CollectorRegistry()
    metrics = MailMetrics(registry)
    down = replace(SMTP, port=free_port())  # nothing listens there
    first = await deliver_due(svc.pool, down, metrics, now)
    assert first.retry == [f"document/{number}"] and first.pending == 1
    # not due again before its backoff (60 s), then the doubled one (120 s)
    assert (await deliver_due(svc.pool, down, metrics, now + timedelta(seconds=59))).retry == []
    assert (await deliver_due(svc.pool, down, metrics, now + timedelta(seconds=60))).retry
    assert (await deliver_due(svc.pool, down, metrics, now + timedelta(seconds=179))).retry == []
    last = await deliver_due(svc.pool, down, metrics, now + timedelta(seconds=180))
    assert last.failed == [f"document/{number}"] and last.pending == 0
    assert registry.get_sample_value("tollgate_mail_total", {"outcome": "retry"}) == 2
    assert registry.get_sample_value("tollgate_mail_total", {"outcome": "failed"}) == 1
    row = await svc.pool.fetchrow("select attempts, last_error, sent_at from mail_outbox")
    assert row["attempts"] == 3 and row["last_error"] and row["sent_at"] is None
    assert sink.messages == []


async def test_a_retry_that_succeeds_sends_once(
    svc: Services, make_account: AccountFactory, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    number = await issued(svc, make_account)
    now = local("2026-12-01T01:00")
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await queue_documents(conn, BillingSettings.from_env(SELLER), PdfSettings(), now)
    metrics = MailMetrics(CollectorRegistry())
    await deliver_due(svc.pool, replace(SMTP, port=free_port()), metrics, now)
    later = now + timedelta(minutes=5)
    report = await deliver_due(svc.pool, replace(SMTP, port=port), metrics, later)
    assert report.sent == [f"document/{number}"]
    assert len(sink.messages) == 1


def test_smtp_settings_name_what_is_wrong() -> None:
    from core.env import SettingsError

    with pytest.raises(SettingsError, match="TOLLGATE_SMTP_FROM"):
        SmtpSettings.from_env({"TOLLGATE_SMTP_HOST": "mail"})
    with pytest.raises(SettingsError, match="TOLLGATE_SMTP_PORT"):
        SmtpSettings.from_env({"TOLLGATE_SMTP_PORT": "70000"})
    s = SmtpSettings.from_env(
        {
            "TOLLGATE_SMTP_HOST": "mail",
            "TOLLGATE_SMTP_FROM": "a@b.pl",
            "TOLLGATE_SMTP_STARTTLS": "1",
        }
    )
    assert (s.host, s.port, s.starttls) == ("mail", 25, True)
