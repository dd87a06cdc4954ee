"""`tollgate mail send`: billing queues its new documents' e-mails, notify sends them."""

from __future__ import annotations

import argparse

from billing.cli import _now
from billing.errors import BillingError
from billing.mailing import queue_documents
from billing.pdf import PdfSettings
from billing.settings import BillingSettings
from core.cliout import bad_input, print_json
from notify.metrics import MailMetrics
from notify.sender import deliver_due
from notify.settings import SmtpSettings
from runtime.services import Services


async def cmd_send(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    settings = BillingSettings.from_env()
    smtp = SmtpSettings.from_env()
    with bad_input(BillingError):
        now = _now(args, settings)
    async with s.pool.acquire() as conn:
        queued = await queue_documents(conn, settings, PdfSettings.from_env(), now)
    delivered = await deliver_due(s.pool, smtp, MailMetrics(), now)
    print_json({**queued.as_dict(), **delivered.as_dict()})
