"""`tollgate mail send`: billing queues its new documents' e-mails, notify sends them."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from billing.errors import BillingError
from billing.mailing import queue_documents
from billing.pdf import PdfSettings
from billing.settings import BillingSettings
from core.cliout import bad_input, now_of, print_json
from notify.mail_metrics import MailMetrics
from notify.mail_settings import SmtpSettings
from notify.sender import deliver_due
from runtime.services import Services

log = logging.getLogger("tollgate.mail")


async def one_pass(s: Services, metrics: MailMetrics, now: datetime) -> dict[str, Any]:
    assert s.pool is not None
    settings = BillingSettings.from_env()
    async with s.pool.acquire() as conn:
        queued = await queue_documents(conn, settings, PdfSettings.from_env(), now)
    delivered = await deliver_due(s.pool, SmtpSettings.from_env(), metrics, now)
    return {**queued.as_dict(), **delivered.as_dict()}


async def cmd_send(s: Services, args: argparse.Namespace) -> None:
    with bad_input(BillingError):
        now = now_of(args.now)
    print_json(await one_pass(s, MailMetrics(CollectorRegistry()), now))


async def cmd_run(s: Services, args: argparse.Namespace) -> None:
    """A pass every --interval seconds; a pass that fails (PostgreSQL away) is logged and
    the next one tries again."""
    from core.exporter import standalone_metrics

    metrics = MailMetrics(standalone_metrics() or CollectorRegistry())
    while True:
        try:
            report = await one_pass(s, metrics, datetime.now(UTC))
            if report["sent"] or report["retry"] or report["failed"]:
                log.info("mail: %s", report)
        except (OSError, asyncpg.PostgresError) as exc:
            log.error("mail pass failed: %r", exc)
        await asyncio.sleep(args.interval)
