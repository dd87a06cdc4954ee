"""Schemathesis drives every operation of /openapi.json against the running panel (operator
token, data in place): no 5xx, and every status, header and body matches the document.
Then the same operations with data that breaks the document (negative mode), and raw
requests with fuzzed headers and bodies: still no 5xx, and no traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panel_api.app import build_app, document
from panel_api.server import CappedSite
from panel_api.server import runner as panel_runner
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenStore
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.ledger import CallRequest
from runtime.services import services
from switch.ari import AriSettings
from tests.conftest import RETAIL, _truncate, drop_prefix, ensure_panel_db, panel_settings
from tests.e2e.rig import free_tcp_port
from tests.panel import NOW, cdr, store_cdrs

schema = schemathesis.openapi.from_dict(document())
negative = schemathesis.openapi.from_dict(document())
negative.config.generation.update(modes=[schemathesis.GenerationMode.NEGATIVE])
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


class Tracebacks(logging.Handler):
    """Every log record that carries an exception or says ERROR: a 500 in disguise."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


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
        self.tracebacks = Tracebacks()

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
        # fuzzed requests fail authentication by the thousand: the per-address limit would
        # answer them all 429 and hide what the operations do
        panel = PanelSettings(
            metrics_port=0, rate_per_s=1e6, burst=1_000_000, auth_failures=1_000_000
        )
        # served the way `tollgate panel` serves it (timeouts, connection cap)
        runner = panel_runner(build_app(self.settings, panel, ari=AriSettings()), panel)
        await runner.setup()
        await CappedSite(runner, "127.0.0.1", self.port, panel.max_connections).start()
        return runner

    async def _clean(self) -> None:
        async with services(self.settings, pg=False) as s:
            await drop_prefix(s.redis, self.settings.keyspace.prefix)

    def __enter__(self) -> PanelThread:
        logging.getLogger().addHandler(self.tracebacks)
        self.thread.start()
        self.ready.wait(30)
        if self.failure is not None:
            raise self.failure
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        logging.getLogger().removeHandler(self.tracebacks)

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are (no client library to tidy them) and read the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def panel() -> Iterator[PanelThread]:
    with PanelThread() as running:
        yield running


@pytest.fixture
def no_tracebacks(panel: PanelThread) -> Iterator[None]:
    before = len(panel.tracebacks.records)
    yield
    assert panel.tracebacks.records[before:] == [], panel.tracebacks.text()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # no_tracebacks checks each example alike
    ],
)
def test_panel_conforms_to_its_openapi_document(
    case: schemathesis.Case, panel: PanelThread, no_tracebacks: None
) -> None:
    case.call_and_validate(
        base_url=panel.url,
        headers={"Authorization": f"Bearer {panel.token}"},
        checks=CHECKS,
        timeout=30,
    )


@negative.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_breaks_the_panel(
    case: schemathesis.Case, panel: PanelThread, no_tracebacks: None
) -> None:
    case.call_and_validate(
        base_url=panel.url,
        headers={"Authorization": f"Bearer {panel.token}"},
        checks=[schemathesis.checks.not_a_server_error],
        timeout=30,
    )


def _status(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2 and line[0].startswith(b"HTTP/"), answer[:200]
    return int(line[1])


# the reported cases first, then whatever hypothesis makes of them
REPORTED = [
    (b"GET", b"/api/v1/accounts", b"Authorization: Bearer \xff\xfe\xc3(\r\n", b""),
    (b"GET", b"/api/v1/accounts/alice/cdrs?limit=--5", b"", b""),
    (b"GET", b"/api/v1/accounts/alice/balance?entries=--1", b"", b""),
    (b"GET", b"/api/v1/findings?account=%00", b"", b""),
    (b"GET", b"/api/v1/calls?account=%00", b"", b""),
    (b"POST", b"/api/v1/accounts", b"", b"[" * 100_000),
    (b"POST", b"/api/v1/accounts/alice/topups", b"", b'{"amount": "1e999999"}'),
    (b"POST", b"/api/v1/accounts/alice/topups", b"", b'{"amount": "1e300000"}'),
    (b"PATCH", b"/api/v1/accounts/alice", b"", b'{"deck": "nosuchdeck"}'),
    (b"PATCH", b"/api/v1/accounts/alice", b"", b'{"deck": "../../etc"}'),
    (b"POST", b"/api/v1/accounts", b"", b'{"id": "carol", "currency": "<B>"}'),
    # past aiohttp's default request line (8,190 bytes): was its plain-text 400
    (b"GET", b"/api/v1/audit?account=" + b"%F0%9F%98%80" * 700, b"", b""),
    (b"GET", b"/api/v1/audit?account=" + b"a" * 40_000, b"", b""),
    (b"GET", b"/api/v1/audit", b"X-Long: " + b"b" * 10_000 + b"\r\n", b""),
]


def _request(method: bytes, target: bytes, headers: bytes, body: bytes, token: str) -> bytes:
    auth = b"" if b"Authorization" in headers else f"Authorization: Bearer {token}\r\n".encode()
    return (
        method + b" " + target + b" HTTP/1.1\r\nHost: panel\r\nConnection: close\r\n"
        + auth + headers
        + b"Content-Type: application/json\r\n"
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


@pytest.mark.parametrize(("method", "target", "headers", "body"), REPORTED)
def test_reported_inputs_get_4xx(
    panel: PanelThread,
    no_tracebacks: None,
    method: bytes,
    target: bytes,
    headers: bytes,
    body: bytes,
) -> None:
    answer = panel.raw(_request(method, target, headers, body, panel.token))
    assert 400 <= _status(answer) < 500
    head, _, text = answer.partition(b"\r\n\r\n")
    assert b"\r\nContent-Type: application/json" in head, answer[:300]  # the panel's error
    assert json.loads(text)["error"]["code"].isupper()


HEADER_VALUE = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
TARGETS = st.sampled_from(
    [
        b"/api/v1/accounts",
        b"/api/v1/accounts/alice",
        b"/api/v1/accounts/alice/topups",
        b"/api/v1/accounts/alice/cdrs",
        b"/api/v1/accounts/alice/balance",
        b"/api/v1/findings",
        b"/api/v1/calls",
        b"/api/v1/decks",
    ]
)
JSONISH = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@given(
    method=st.sampled_from([b"GET", b"POST", b"PATCH", b"DELETE"]),
    target=TARGETS,
    query=st.binary(max_size=60).map(lambda b: b.replace(b" ", b"%20").replace(b"\r", b"")),
    header_name=st.sampled_from([b"Authorization", b"X-Anything", b"Cookie", b"Accept"]),
    header_value=HEADER_VALUE,
    body=JSONISH,
    with_token=st.booleans(),
)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_raw_fuzzed_requests_never_get_5xx(
    panel: PanelThread,
    no_tracebacks: None,
    method: bytes,
    target: bytes,
    query: bytes,
    header_name: bytes,
    header_value: bytes,
    body: bytes,
    with_token: bool,
) -> None:
    query = query.replace(b"\n", b"").replace(b"#", b"%23")
    header = header_name + b": " + header_value + b"\r\n"
    if with_token and header_name == b"Authorization":
        header = b""
    raw = _request(method, target + b"?" + query, header, body, panel.token if with_token else "x")
    answer = panel.raw(raw)
    if not answer:
        return  # the server may drop a request it cannot parse at all
    assert _status(answer) < 500, (raw[:300], answer[:300])
