"""Schemathesis drives every operation of /openapi.json against the running panel (operator
token, data in place): no 5xx, and every status, header and body matches the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings

from panel_api.app import build_app
from panel_api.openapi import spec
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenStore
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.ledger import CallRequest
from switch.ari import AriSettings
from tests.conftest import RETAIL, _truncate, drop_prefix
from tests.e2e.rig import free_tcp_port
from tests.integration.test_panel_api import NOW, cdr, ensure_panel_db, panel_settings, store_cdrs
from tollgate.services import services

schema = schemathesis.openapi.from_dict(spec())
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


class PanelThread:
    """The panel with its own event loop in a thread: schemathesis calls it synchronously."""

    def __init__(self) -> None:
        self.settings = panel_settings(ensure_panel_db())
        self.port = free_tcp_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="panel", daemon=True)
        self.token = ""
        self.failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runner = self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the test thread, which fails with it
            self.failure = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.run_until_complete(self._clean())
        self.loop.close()

    async def _start(self) -> web.AppRunner:
        await _truncate(self.settings.pg_dsn)
        async with services(self.settings) as s:
            assert s.pool is not None
            async with s.pool.acquire() as conn:
                deck, _ = await import_deck(conn, load_deck(RETAIL), source="test")
            await publish(s.redis, s.settings.keyspace, deck)
            for name in ("alice", "bob"):
                await s.accounts.create(Account(name, deck="retail", cps=0, max_calls=0))
                await s.accounts.add_entry(
                    name, "topup", 50_000_000, reference=f"open-{name}", at=datetime.now(UTC)
                )
            await s.ledger.authorize(CallRequest("alice", "running-1", "0601234567"))
            await store_cdrs(
                s.pool, [cdr("alice", n, NOW - timedelta(minutes=n)) for n in range(1, 30)]
            )
            _, self.token = await TokenStore(s.pool).create(Role.OPERATOR, label="schemathesis")
        panel = PanelSettings(metrics_port=0, rate_per_s=1e6, burst=1_000_000)
        runner = web.AppRunner(build_app(self.settings, panel, ari=AriSettings()))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def _clean(self) -> None:
        async with services(self.settings, pg=False) as s:
            await drop_prefix(s.redis, self.settings.keyspace.prefix)

    def __enter__(self) -> PanelThread:
        self.thread.start()
        self.ready.wait(30)
        if self.failure is not None:
            raise self.failure
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def panel() -> Iterator[PanelThread]:
    with PanelThread() as running:
        yield running


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_panel_conforms_to_its_openapi_document(
    case: schemathesis.Case, panel: PanelThread
) -> None:
    case.call_and_validate(
        base_url=panel.url,
        headers={"Authorization": f"Bearer {panel.token}"},
        checks=CHECKS,
        timeout=30,
    )
