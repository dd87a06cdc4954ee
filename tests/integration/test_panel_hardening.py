"""The panel under a greedy or hostile client, on the real Redis and PostgreSQL: stalled
downloads, an exhausted pool, slow and idle connections, token guessing, revoked and expired
tokens, a failing service behind /health.

No assertion here is about time: the tests hold connections open and check who is still
answered, what is closed, and with what status. Waits are bounded only so that a failure
(a hang on code without the protection) ends the test instead of the run."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.listing import listing
from billing.period import Period
from core.cliout import CliError
from panel_api.app import build_app
from panel_api.cli_args import register
from panel_api.context import EXPORT_GATE, POOL, REDIS
from panel_api.metrics import METRICS
from panel_api.server import CappedSite, runner
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenStore
from runtime.services import Services
from runtime.settings import Settings
from switch.ari import AriSettings
from tests.conftest import AccountFactory, PanelFactory
from tests.panel import NOW, bearer, cdr, store_cdrs, token

pytestmark = pytest.mark.panel_db

BOUND = 30  # seconds: only ever reached when the panel hangs, i.e. the test fails


# -- raw clients -------------------------------------------------------------------------------


async def connect(port: int) -> socket.socket:
    """A client socket with a tiny receive window, so the server cannot push much ahead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def head_of(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read the status line and headers a byte at a time (not one byte of the body)."""
    loop, data = asyncio.get_running_loop(), b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = await loop.sock_recv(sock, 1)
        assert chunk, f"closed after {data!r}"
        data += chunk
    lines = data.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    return int(lines[0].split()[1]), headers


async def stalled_get(port: int, path: str, secret: str = "") -> tuple[int, dict[str, str], Any]:
    """GET `path`, read the status line and headers, then read nothing more."""
    sock = await connect(port)
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    request = f"GET {path} HTTP/1.1\r\nHost: panel\r\n{auth}\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    status, headers = await asyncio.wait_for(head_of(sock), BOUND)
    return status, headers, sock


async def read_to_end(sock: socket.socket) -> tuple[int, bool]:
    """Bytes until the server closes; True when it closed by reset (an aborted transfer)."""
    loop, total = asyncio.get_running_loop(), 0
    try:
        while chunk := await loop.sock_recv(sock, 65536):
            total += len(chunk)
    except ConnectionResetError:
        return total, True
    return total, False


async def until(predicate: Any) -> None:
    for _ in range(BOUND * 20):  # polled: the panel has no event to wait on for this
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


def counter(app: Any, name: str) -> float:
    value: float = getattr(app[METRICS], name)._value.get()
    return value


# -- 1: downloads cannot starve interactive requests -------------------------------------------


async def test_stalled_downloads_leave_other_customers_answered(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a, b = await make_account(), await make_account(balance=5_000_000)
    assert svc.pool is not None
    # MBs of CSV: far more than the socket buffers between a stalled client and us
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(seconds=n)) for n in range(1, 20_001)])
    tokens_a = [await token(svc, Role.CUSTOMER, a.id) for _ in range(5)]
    secret_b = await token(svc, Role.CUSTOMER, b.id)
    limits = {
        "export_pool_size": 3,
        "exports_per_token": 2,
        "send_timeout_s": 600.0,  # held for the whole test
        "pool_acquire_timeout_s": 0.2,
        "send_buffer_bytes": 16384,
    }
    client = await panel(**limits)
    path = f"/api/v1/accounts/{a.id}/cdrs.csv"
    held: list[tuple[int, dict[str, str], Any]] = []
    # 10 stalled downloads: two by each of 5 tokens of one customer
    for secret in tokens_a:
        for _ in range(2):
            held.append(await stalled_get(client.port, path, secret))
    assert [status for status, _, _ in held].count(200) == 3  # the export pool, no more
    refused = [headers for status, headers, _ in held if status != 200]
    assert {status for status, _, _ in held} == {200, 503}
    assert all(int(headers["retry-after"]) >= 1 for headers in refused)

    # another customer, and /health, are answered meanwhile
    r = await asyncio.wait_for(
        client.get(f"/api/v1/accounts/{b.id}/balance", headers=bearer(secret_b)), BOUND
    )
    assert r.status == 200 and (await r.json())["balance"] == "5.0000"
    assert (await asyncio.wait_for(client.get("/health"), BOUND)).status == 200
    for _, _, sock in held:
        sock.close()


async def test_a_stalled_download_is_cut_off_and_gives_its_connection_back(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(seconds=n)) for n in range(1, 20_001)])
    secrets = [await token(svc, Role.CUSTOMER, a.id) for _ in range(3)]
    limits = {"export_pool_size": 3, "send_timeout_s": 0.5, "send_buffer_bytes": 16384}
    client = await panel(**limits)
    path = f"/api/v1/accounts/{a.id}/cdrs.csv"
    held = [await stalled_get(client.port, path, secret) for secret in secrets]
    assert [status for status, _, _ in held] == [200, 200, 200]
    # the send timeout runs out: each transfer is aborted
    await until(lambda: counter(client.app, "downloads_stalled") >= 3)
    for _, _, sock in held:
        received, _ = await asyncio.wait_for(read_to_end(sock), BOUND)
        assert received < 1_000_000  # cut short, not delivered (the whole is ~2 MB)
        sock.close()
    # their connections went back: the same tokens download again, completely
    for secret in secrets:
        r = await asyncio.wait_for(client.get(path, headers=bearer(secret)), BOUND)
        assert r.status == 200 and (await r.text()).count("\n") == 20_001


async def test_one_token_runs_only_its_share_of_downloads(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(seconds=n)) for n in range(1, 20_001)])
    made, secret = await TokenStore(svc.pool).create(Role.CUSTOMER, a.id)
    limits = {
        "exports_per_token": 2,
        "export_pool_size": 4,
        "send_timeout_s": 600.0,
        "send_buffer_bytes": 16384,
    }
    client = await panel(**limits)
    path = f"/api/v1/accounts/{a.id}/cdrs.csv"
    held = [await stalled_get(client.port, path, secret) for _ in range(3)]
    assert [status for status, _, _ in held] == [200, 200, 429]
    assert held[2][1]["retry-after"]
    # the export link counts for the token that asked for it
    r = await client.post(f"/api/v1/accounts/{a.id}/cdrs/exports", headers=bearer(secret))
    link = (await r.json())["url"]
    status, _, sock = await stalled_get(client.port, link)
    assert status == 429
    for _, _, s in [*held, (0, {}, sock)]:
        s.close()
    # the refused link was not used up: once a download ends, it works
    await until(lambda: client.app[EXPORT_GATE].running(made.id) < 2)
    r = await client.get(link)
    assert r.status == 200 and (await r.text()).count("\n") == 20_001


async def test_a_request_that_gets_no_connection_soon_is_503_with_retry_after(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel(pool_acquire_timeout_s=0.2)
    pool = client.app[POOL]
    taken = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        r = await asyncio.wait_for(
            client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(secret)), BOUND
        )
        assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
        assert (await r.json())["error"]["code"] == "BUSY"
    finally:
        for conn in taken:
            await pool.release(conn)
    r = await client.get(f"/api/v1/accounts/{a.id}/balance", headers=bearer(secret))
    assert r.status == 200


# -- 2: the statement is streamed ---------------------------------------------------------------


async def test_statement_is_streamed_and_says_what_the_listing_says(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account(timezone="Europe/Warsaw")
    started = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    classes = ["mobile", "fixed", "international"]
    calls = [
        cdr(
            a.id,
            n,
            started + timedelta(minutes=n),
            number_class=classes[n % 3],
            prefix=["4860", "4822", "", "4930"][n % 4],
            rate_name=f"dest {n % 4}" if n % 7 else "",
            billsec=n % 90,
            cost=1_000 * n,
        )
        for n in range(1, 1_601)
    ]
    assert svc.pool is not None
    await store_cdrs(svc.pool, calls)
    secret = await token(svc, Role.CUSTOMER, a.id)
    client = await panel()
    r = await client.get(f"/api/v1/accounts/{a.id}/statements/2026-03", headers=bearer(secret))
    assert r.status == 200
    assert "Content-Length" not in r.headers  # streamed, not built in one piece
    body = json.loads(await r.read())
    async with svc.pool.acquire() as conn:
        expected = (await listing(conn, await svc.accounts.get(a.id), Period(2026, 3))).as_dict()
    assert body == json.loads(json.dumps(expected))
    assert body["total"]["count"] == 1_600


# -- 3: slow and idle clients -------------------------------------------------------------------


@asynccontextmanager
async def real_panel(settings: Settings, **panel: Any) -> AsyncIterator[CappedSite]:
    """The panel as `tollgate panel` serves it: its runner and capped site."""
    panel.setdefault("metrics_port", 0)
    ps = PanelSettings(**panel)
    run = runner(build_app(settings, ps, ari=AriSettings()), ps)
    await run.setup()
    site = CappedSite(run, "127.0.0.1", 0, ps.max_connections)
    await site.start()
    try:
        yield site
    finally:
        await run.cleanup()


async def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    loop, data = asyncio.get_running_loop(), b""
    with suppress(ConnectionResetError):
        while chunk := await loop.sock_recv(sock, 65536):
            data += chunk
    return data


async def test_idle_and_slow_clients_are_closed(
    svc: Services, settings: Settings, make_account: AccountFactory
) -> None:
    secret = await token(svc, Role.OPERATOR)
    async with real_panel(settings, header_timeout_s=0.5, body_timeout_s=0.5) as site:
        loop = asyncio.get_running_loop()
        idle = await connect(site.port)  # sends nothing at all
        assert await asyncio.wait_for(closed_by_server(idle), BOUND) == b""

        # a header line now and then, never the end of the headers
        trickle = await connect(site.port)
        await loop.sock_sendall(trickle, b"GET /health HTTP/1.1\r\nHost: panel\r\n")

        async def dribble() -> None:
            with suppress(OSError):
                for n in range(10 * BOUND):
                    await loop.sock_sendall(trickle, f"X-Slow-{n}: 1\r\n".encode())
                    await asyncio.sleep(0.1)

        feeder = asyncio.create_task(dribble())
        answer = await asyncio.wait_for(closed_by_server(trickle), BOUND)
        feeder.cancel()
        assert b"200" not in answer  # closed before its request was ever complete

        # a body announced and never sent
        body = await connect(site.port)
        await loop.sock_sendall(
            body,
            "POST /api/v1/accounts HTTP/1.1\r\nHost: panel\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode(),
        )
        answer = await asyncio.wait_for(closed_by_server(body), BOUND)
        assert answer.startswith(b"HTTP/1.1 408")
        for sock in (idle, trickle, body):
            sock.close()


async def test_connections_beyond_the_cap_are_refused(settings: Settings) -> None:
    async with real_panel(settings, max_connections=3) as site:
        held = [await connect(site.port) for _ in range(3)]
        extra = await connect(site.port)
        answer = await asyncio.wait_for(closed_by_server(extra), BOUND)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After" in answer
        for sock in held:
            sock.close()
        extra.close()

        async def served() -> bytes:
            while True:  # the server notices the closed ones as it gets to them
                fresh = await connect(site.port)
                await asyncio.get_running_loop().sock_sendall(
                    fresh, b"GET /health HTTP/1.1\r\nHost: panel\r\nConnection: close\r\n\r\n"
                )
                answer = await closed_by_server(fresh)
                fresh.close()
                if not answer.startswith(b"HTTP/1.1 503"):
                    return answer
                await asyncio.sleep(0.05)

        # the held ones gone, a new client is served
        assert (await asyncio.wait_for(served(), BOUND)).startswith(b"HTTP/1.1 200")


async def _answer_of(port: int, request: bytes) -> tuple[int, str, dict[str, Any]]:
    """Send a raw request; the status, Content-Type and JSON body of the answer."""
    sock = await connect(port)
    await asyncio.get_running_loop().sock_sendall(sock, request)
    answer = await asyncio.wait_for(closed_by_server(sock), BOUND)
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    kind = headers.get("content-type", "").split(";")[0]
    return int(lines[0].split()[1]), kind, json.loads(body)


async def test_over_long_requests_get_the_panels_json_error(
    svc: Services, settings: Settings
) -> None:
    from panel_api.server import MAX_FIELD_BYTES, MAX_LINE_BYTES

    secret = await token(svc, Role.OPERATOR)

    def get(target: str, extra: str = "") -> bytes:
        return (
            f"GET {target} HTTP/1.1\r\nHost: panel\r\nConnection: close\r\n"
            f"Authorization: Bearer {secret}\r\n{extra}\r\n"
        ).encode()

    wide = "%F0%9F%98%80" * 700  # 700 characters, 8,400 bytes percent-encoded
    async with real_panel(settings) as site:
        # past aiohttp's default 8,190 bytes, within the panel's: the app names the parameter
        status, kind, body = await _answer_of(site.port, get(f"/api/v1/audit?account={wide}"))
        assert (status, kind) == (400, "application/json")
        assert body["error"]["code"] == "INVALID_PARAMETER"
        assert body["error"]["details"]["parameter"] == "account"
        # beyond any bound: still the panel's JSON error, with a stable code
        endless = "a" * (MAX_LINE_BYTES + 1)
        status, kind, body = await _answer_of(site.port, get(f"/api/v1/audit?account={endless}"))
        assert (status, kind, body["error"]["code"]) == (
            400,
            "application/json",
            "REQUEST_TOO_LONG",
        )
        assert body["error"]["details"]["max_line_bytes"] == MAX_LINE_BYTES
        header = f"X-Long: {'b' * (MAX_FIELD_BYTES + 1)}\r\n"
        status, kind, body = await _answer_of(site.port, get("/api/v1/audit", header))
        assert (status, kind, body["error"]["code"]) == (
            400,
            "application/json",
            "REQUEST_TOO_LONG",
        )
        status, kind, body = await _answer_of(site.port, b"GET /\x00 HTTP/9\r\n\r\n")
        assert (status, kind, body["error"]["code"]) == (
            400,
            "application/json",
            "MALFORMED_REQUEST",
        )


def test_every_documented_parameter_at_its_longest_fits_the_request_line() -> None:
    """Percent-encoded 4-byte characters (12 bytes each) in every bounded parameter at once:
    the request still reaches the app, which names the parameter it refuses."""
    from panel_api.app import document
    from panel_api.server import MAX_LINE_BYTES

    longest = 0
    for path, operations in document()["paths"].items():
        for method, op in operations.items():
            params = [p for p in op.get("parameters", []) if "maxLength" in p["schema"]]
            line = len(f"{method.upper()} {path}? HTTP/1.1") + sum(
                len(p["name"]) + 2 + 12 * p["schema"]["maxLength"] for p in params
            )
            longest = max(longest, line)
    assert 8190 < longest <= MAX_LINE_BYTES  # past aiohttp's default, within the panel's


# -- 6: failed authentication is rate limited per address ---------------------------------------


async def test_failed_authentication_is_limited_per_address_before_the_database(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    good = await token(svc, Role.CUSTOMER, a.id)
    path = f"/api/v1/accounts/{a.id}/balance"
    guesser = {"X-Forwarded-For": "203.0.113.7"}  # through a proxy on loopback (trusted)
    client = await panel(auth_failures=5, auth_failure_window_s=60)
    statuses = []
    for n in range(30):
        r = await client.get(path, headers={**bearer(f"tgp_guess{n}"), **guesser})
        statuses.append(r.status)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert int(r.headers["Retry-After"]) >= 1
    assert (await r.json())["error"]["code"] == "AUTH_RATE_LIMITED"
    # refused before its token is looked at: even a good token, from that address
    r = await client.get(path, headers={**bearer(good), **guesser})
    assert r.status == 429
    # another address is not affected
    r = await client.get(path, headers={**bearer(good), "X-Forwarded-For": "198.51.100.1"})
    assert r.status == 200
    # X-Forwarded-For from a peer that is not a trusted proxy proves nothing
    client = await panel(auth_failures=3, trusted_proxies=())
    for n in range(3):
        spoof = {"X-Forwarded-For": f"192.0.2.{n}"}
        r = await client.get(path, headers={**bearer(f"tgp_guess{n}"), **spoof})
        assert r.status == 401
    r = await client.get(path, headers={**bearer(good), "X-Forwarded-For": "192.0.2.99"})
    assert r.status == 429


# -- 7 and 8: export links, token expiry and rotation -------------------------------------------


async def test_an_export_link_dies_with_its_token(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    await store_cdrs(svc.pool, [cdr(a.id, n, NOW - timedelta(minutes=n)) for n in range(1, 4)])
    store = TokenStore(svc.pool)
    made, secret = await store.create(Role.CUSTOMER, a.id)
    client = await panel()
    r = await client.post(f"/api/v1/accounts/{a.id}/cdrs/exports", headers=bearer(secret))
    link = (await r.json())["url"]
    await store.revoke(made.id)
    r = await client.get(link)
    assert r.status == 404 and (await r.json())["error"]["code"] == "EXPORT_NOT_FOUND"


async def test_tokens_expire(
    svc: Services, panel: PanelFactory, make_account: AccountFactory
) -> None:
    a = await make_account()
    assert svc.pool is not None
    store = TokenStore(svc.pool)
    now = datetime.now(UTC)
    old, old_secret = await store.create(Role.CUSTOMER, a.id, now=now - timedelta(days=91))
    assert old.expires_at == now - timedelta(days=1)  # customers: 90 days by default
    fresh, fresh_secret = await store.create(Role.CUSTOMER, a.id, now=now)
    op, _ = await store.create(Role.OPERATOR, now=now)
    assert op.expires_at is None  # operators: only when asked
    assert await store.authenticate(old_secret, now) is None
    assert await store.authenticate(fresh_secret, now) is not None
    assert await store.authenticate(fresh_secret, now + timedelta(days=91)) is None
    client = await panel()
    assert (await client.get("/api/v1/me", headers=bearer(old_secret))).status == 401
    me = await (await client.get("/api/v1/me", headers=bearer(fresh_secret))).json()
    assert fresh.expires_at is not None
    assert me["expires_at"] == fresh.expires_at.isoformat()


async def test_cli_rotates_tokens_and_lists_expiry_and_last_use(
    svc: Services,
    panel: PanelFactory,
    make_account: AccountFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = await make_account()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))

    async def run(*argv: str) -> Any:
        args = parser.parse_args(argv)
        await args.run(svc, args)
        return json.loads(capsys.readouterr().out)

    created = await run("token", "create", "--role", "customer", "--account", a.id)
    assert created["expires_at"] is not None
    with pytest.raises(CliError):  # a customer token must expire
        await run("token", "create", "--role", "customer", "--account", a.id, "--expires-days", "0")
    capsys.readouterr()
    client = await panel(last_used_flush_s=3600)
    assert (await client.get("/api/v1/me", headers=bearer(created["token"]))).status == 200
    await client.close()  # the shutdown flush records its use
    rotated = await run("token", "rotate", created["id"], "--expires-days", "7")
    assert rotated["token"] != created["token"] and rotated["rotated_from"] == created["id"]
    assert rotated["account"] == a.id and rotated["role"] == "customer"
    listed = {t["id"]: t for t in await run("token", "list")}
    assert listed[created["id"]]["revoked_at"] is not None
    assert listed[created["id"]]["last_used_at"] is not None
    assert listed[rotated["id"]]["expires_at"] is not None
    assert "token" not in listed[rotated["id"]]
    assert svc.pool is not None
    now = datetime.now(UTC)
    assert await TokenStore(svc.pool).authenticate(created["token"], now) is None
    assert await TokenStore(svc.pool).authenticate(rotated["token"], now) is not None
    with pytest.raises(CliError):  # a revoked token is not rotated again
        await run("token", "rotate", created["id"])


# -- 15: /health says a status, never a service's error -----------------------------------------


async def test_health_says_a_status_only(panel: PanelFactory) -> None:
    client = await panel()
    assert await (await client.get("/health")).json() == {"status": "ok"}
    redis = client.app[REDIS]
    # Redis goes away: new connections are refused
    await redis.connection_pool.disconnect()
    redis.connection_pool.connection_kwargs["port"] = 1
    redis.connection_pool.reset()
    r = await client.get("/health")
    assert r.status == 503 and r.headers["Retry-After"]
    assert await r.json() == {"status": "unavailable"}  # no "Connection refused", no host
