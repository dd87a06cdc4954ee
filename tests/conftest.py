"""Fixtures on the real Redis and PostgreSQL (127.0.0.1), isolated per test.

Each test gets its own Redis key prefix (deleted afterwards) and a freshly truncated
`tollgate_test` database, so tests never see each other's or the demo's data."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from core import db
from rating.accounts import Account, AccountStatus
from rating.deck import Deck, load_deck
from rating.deck_store import import_deck, publish
from rating.keys import Keyspace
from rating.ledger import LedgerSettings
from runtime.services import Services, services
from runtime.settings import Settings

if TYPE_CHECKING:  # the panel app is imported only by the tests that start one
    from tests.panel import OperatorPanel

ROOT = Path(__file__).resolve().parent.parent
TEST_DSN = os.environ.get(
    "TOLLGATE_TEST_PG_DSN", "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate_test"
)
TEST_REDIS = os.environ.get("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RETAIL = ROOT / "examples" / "decks" / "retail" / "deck.toml"

# Every table of the schema is emptied between tests, except the migrations' own record
# (and counters a migration seeds, which tests must not depend on being reset).
KEEP = ("schema_migrations",)


@functools.cache
def fresh_database(dsn: str) -> str:
    """Drop and create the database of `dsn` and apply every migration, once per test run:
    each run starts from the schema this checkout defines, whatever an earlier run (of
    another branch, with other migrations) left behind."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"test database name must be an identifier: {name!r}")

    async def run() -> None:
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
            await admin.execute(f'create database "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return dsn


@pytest.fixture(scope="session")
def migrated() -> str:
    return fresh_database(TEST_DSN)


# The panel tests' own database, named after the test database (parallel suites on other test
# databases never share it), so they never race other suites' truncates.
PANEL_DB = f"{urlsplit(TEST_DSN).path.lstrip('/') or 'tollgate_test'}_panel"
PANEL_DSN = urlunsplit(urlsplit(TEST_DSN)._replace(path=f"/{PANEL_DB}"))


def ensure_panel_db() -> str:
    """The panel tests' database, migrated once per run."""
    return fresh_database(PANEL_DSN)


def settings_on(dsn: str, prefix: str = "tgt") -> Settings:
    """Settings on the test services with a key prefix of their own."""
    return Settings(
        redis_url=TEST_REDIS,
        pg_dsn=dsn,
        keyspace=Keyspace(f"{prefix}{uuid.uuid4().hex[:10]}", 4),
        ledger=LedgerSettings(switch_host="test"),
        deck_refresh_s=0.0,
    )


def panel_settings(dsn: str) -> Settings:
    return settings_on(dsn, "tgp")


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """A test marked `panel_db` (the panel's) gets the panel tests' database; the others the
    test database. Either way tables are truncated and the key prefix is the test's own."""
    if request.node.get_closest_marker("panel_db"):
        return panel_settings(ensure_panel_db())
    return settings_on(request.getfixturevalue("migrated"))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a tollgate process needs to run against these settings' services."""
    return {
        "TOLLGATE_PG_DSN": settings.pg_dsn,
        "TOLLGATE_REDIS_URL": settings.redis_url,
        "TOLLGATE_REDIS_MODE": settings.redis_mode,
        "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
        "TOLLGATE_SHARDS": str(settings.keyspace.shards),
    }


async def _truncate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # `asterisk`: realtime PJSIP tables (SIP logins, registrations Asterisk stored)
        names = [
            f"{r['schemaname']}.{r['tablename']}"
            for r in await conn.fetch(
                "select schemaname, tablename from pg_tables"
                " where schemaname in ('public', 'asterisk')"
                " and tablename <> all($1::text[]) and tablename not like 'cdrs_%'",
                list(KEEP),
            )
        ]
        if names:
            await conn.execute(f"truncate {', '.join(names)} restart identity cascade")
    finally:
        await conn.close()


@pytest.fixture
async def svc(settings: Settings) -> AsyncIterator[Services]:
    await _truncate(settings.pg_dsn)
    async with services(settings) as s:
        try:
            yield s
        finally:
            await drop_prefix(s.redis, settings.keyspace.prefix)


async def drop_prefix(redis: Redis, prefix: str) -> None:
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        await redis.delete(key)


@pytest.fixture
async def retail(svc: Services) -> Deck:
    """The example retail deck, imported and published."""
    return await install_deck(svc, load_deck(RETAIL))


async def install_deck(svc: Services, deck: Deck) -> Deck:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        stored, _ = await import_deck(conn, deck, source="test")
    await publish(svc.redis, svc.settings.keyspace, stored)
    return stored


AccountFactory = Callable[..., Awaitable[Account]]


@pytest.fixture
def make_account(svc: Services, retail: Deck) -> AccountFactory:
    """Create an account (PostgreSQL + Redis) with an optional opening top-up in micro-units,
    created and topped up at `at` (default: now; billing tests pin it).

    The retail deck is imported first: an account's deck must exist."""
    counter = iter(range(1_000_000))

    async def make(balance: int = 0, at: datetime | None = None, **fields: Any) -> Account:
        at = at or datetime.now(UTC)
        fields.setdefault("id", f"acct-{next(counter)}")
        fields.setdefault("deck", "retail")
        fields.setdefault("cps", 0)
        fields.setdefault("max_calls", 0)
        status = fields.pop("status", AccountStatus.ACTIVE)
        account = await svc.accounts.create(Account(**fields), at=at)
        if balance:
            await svc.accounts.add_entry(
                account.id, "topup", balance, note="opening balance", at=at
            )
        if status is not AccountStatus.ACTIVE:
            account = await svc.accounts.set_status(account.id, status)
        return account

    return make


@pytest.fixture
def ledger_settings() -> Iterator[Callable[..., LedgerSettings]]:
    def make(**changes: Any) -> LedgerSettings:
        return replace(LedgerSettings(switch_host="test"), **changes)

    yield make


@pytest.fixture
async def abuse_detector(svc: Services) -> AsyncIterator[Callable[..., Any]]:
    """Make abuse detectors on the test's keyspace: `make(**AbuseSettings fields,
    on_suspend=hook, registry=...)`; quick to notice overrides, closed afterwards."""
    from prometheus_client import CollectorRegistry

    from abuse.actions import no_hook
    from abuse.runner import AbuseDetector
    from abuse.settings import AbuseSettings

    made: list[AbuseDetector] = []

    def make(**changes: Any) -> AbuseDetector:
        hook = changes.pop("on_suspend", no_hook)
        registry = changes.pop("registry", None) or CollectorRegistry()
        changes.setdefault("consumer", "test-abuse")
        changes.setdefault("block_ms", 50)
        changes.setdefault("overrides_refresh_s", 0.0)
        changes.setdefault("evidence_refresh_s", 0.0)
        detector = AbuseDetector(svc, AbuseSettings(**changes), registry=registry, on_suspend=hook)
        made.append(detector)
        return detector

    yield make
    for detector in made:
        await detector.close()


PanelClient = TestClient[web.Request, web.Application]
PanelFactory = Callable[..., Awaitable[PanelClient]]


@pytest.fixture
async def panel(settings: Settings) -> AsyncIterator[PanelFactory]:
    """Start the panel app on a loopback port: `await panel(**PanelSettings fields,
    registry=...)` gives a client (no ARI, no metrics listener unless asked); every panel
    started is stopped after the test."""
    from tests.panel import panel_client

    async with AsyncExitStack() as stack:

        async def start(**fields: Any) -> PanelClient:
            return await stack.enter_async_context(panel_client(settings, **fields))

        yield start


@pytest.fixture
async def operator_panel(panel: PanelFactory, svc: Services) -> OperatorPanel:
    """A panel started with an operator's token (`.client`, `.op` headers); a customer's
    headers by `await .customer(account)`."""
    from panel_api.tokens import Role
    from tests.panel import OperatorPanel, bearer, token

    op = bearer(await token(svc, Role.OPERATOR))
    return OperatorPanel(await panel(), op, svc)


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Any, int]]:
    """A real SMTP server on a loopback port for the test: (tests.smtp.Sink, port)."""
    from tests.smtp import running_sink

    with running_sink() as started:
        yield started
