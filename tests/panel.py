"""What the panel tests share: the panel app on a loopback port, tokens, CDRs stored the way
the CDR writer stores them. Tests start panels through conftest's `panel` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from cdr.model import Cdr
from cdr.partitions import ensure_months, month_of
from cdr.store import prepare, write_batch
from panel_api.app import build_app
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenStore
from runtime.services import Services
from runtime.settings import Settings
from switch.ari import AriSettings

NOW = datetime.now(UTC).replace(microsecond=0)


@asynccontextmanager
async def panel_client(
    settings: Settings, *, registry: CollectorRegistry | None = None, **panel: Any
) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    """The panel app on a loopback port (no ARI, no metrics listener unless asked)."""
    panel.setdefault("metrics_port", 0)
    app = build_app(settings, PanelSettings(**panel), ari=AriSettings(), registry=registry)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def token(svc: Services, role: Role, account: str | None = None) -> str:
    assert svc.pool is not None
    _, secret = await TokenStore(svc.pool).create(role, account, label=f"test-{role}")
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass(frozen=True)
class OperatorPanel:
    """A started panel and an operator's headers (conftest's `operator_panel`), with a
    customer's headers on demand: what the operator pages' tests start from."""

    client: TestClient[aiohttp.web.Request, aiohttp.web.Application]
    op: dict[str, str]
    svc: Services

    async def customer(self, account: str) -> dict[str, str]:
        return bearer(await token(self.svc, Role.CUSTOMER, account))


def cdr(account: str, n: int, started_at: datetime, **fields: Any) -> Cdr:
    base = Cdr(
        call_id=f"call-{account}-{n}",
        started_at=started_at,
        account=account,
        state="finished",
        ended_at=started_at + timedelta(seconds=65),
        decision="ALLOW",
        reason="OK",
        raw="0601234567",
        e164="+48601234567",
        number_class="mobile",
        caller="48221111111",
        switch="test",
        prefix="4860",
        rate_name="Poland mobile",
        deck="retail",
        deck_version=1,
        currency="PLN",
        authorized_at=started_at,
        answered_at=started_at + timedelta(seconds=5),
        billsec=60,
        answered=True,
        rated_cost=190_000,
        cost=190_000,
        disposition="ANSWER",
        hangup_cause="16",
        stream_id=f"{n}-0",
    )
    return replace(base, **fields)


async def store_cdrs(pool: asyncpg.Pool, cdrs: Sequence[Cdr]) -> None:
    """Through the CDR writer's own batch upsert, into the partitions they need."""
    async with pool.acquire() as conn:
        await ensure_months(conn, {month_of(c.started_at) for c in cdrs})
        await prepare(conn)
        await write_batch(conn, "test", cdrs)


def deck_form(rates: bytes, **fields: str) -> aiohttp.FormData:
    """The panel's deck upload form: the rates file and the deck's fields."""
    form = aiohttp.FormData()
    defaults = {"name": "panel-retail", "currency": "PLN", "decimals": "4", "rounding": "up"}
    for name, value in {**defaults, **fields}.items():
        form.add_field(name, value)
    form.add_field("rates", rates, filename="rates.csv", content_type="text/csv")
    return form
