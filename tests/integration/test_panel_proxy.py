"""The deployment's reverse proxy (configs/nginx/nginx.conf) with Debian's nginx in front of
a real panel: the config is valid (`nginx -t`), HTTPS reaches the panel, plain HTTP only
redirects (a token sent there never reaches the panel), and the panel sees the client's
address the proxy wrote (per-address limits work through it)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from panel_api.tokens import Role
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.e2e.rig import free_tcp_port
from tests.integration.test_panel_hardening import real_panel
from tests.panel import token

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "configs" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = [
    pytest.mark.panel_db,
    pytest.mark.skipif(NGINX is None, reason="nginx (Debian: nginx-light)"),
]


def render(tmp: Path, panel_port: int, http_port: int, https_port: int) -> Path:
    """The deployment's config, pointed at this machine's ports and a throwaway certificate."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(tmp / "privkey.pem"),
         "-out", str(tmp / "fullchain.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    text = CONF.read_text()
    for old, new in (
        ("server panel:8080;", f"server 127.0.0.1:{panel_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("/etc/nginx/tls", str(tmp)),
    ):
        assert old in text, old
        text = text.replace(old, new)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx(tmp: Path, conf: Path, *args: str) -> list[str]:
    assert NGINX is not None
    return [NGINX, "-p", str(tmp), "-c", str(conf), "-g", f"pid {tmp}/nginx.pid;", *args]


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_tcp_port(), free_tcp_port()


@asynccontextmanager
async def proxied(tmp: Path, panel_port: int, http: int, https: int) -> AsyncIterator[None]:
    conf = render(tmp, panel_port, http, https)
    checked = await asyncio.create_subprocess_exec(
        *nginx(tmp, conf, "-t"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await checked.communicate()
    assert checked.returncode == 0, err.decode()
    proc = await asyncio.create_subprocess_exec(
        *nginx(tmp, conf, "-g", "daemon off;"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # until it listens
            try:
                socket.create_connection(("127.0.0.1", https), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield
    finally:
        proc.terminate()
        await proc.wait()


async def test_the_proxy_serves_the_panel_over_tls_only(
    svc: Services,
    settings: Settings,
    make_account: AccountFactory,
    tmp_path: Path,
    ports: tuple[int, int],
) -> None:
    a = await make_account(balance=1_000_000)
    secret = await token(svc, Role.CUSTOMER, a.id)
    http, https = ports
    async with (
        real_panel(settings, auth_failures=3) as site,
        proxied(tmp_path, site.port, http, https),
        aiohttp.ClientSession() as session,
    ):
        path = f"/api/v1/accounts/{a.id}/balance"
        auth = {"Authorization": f"Bearer {secret}"}
        r = await session.get(f"https://127.0.0.1:{https}{path}", headers=auth, ssl=False)
        assert r.status == 200 and (await r.json())["balance"] == "1.0000"
        assert r.headers["Strict-Transport-Security"]
        # plain HTTP: a redirect, whatever is asked; the panel never sees the token
        r = await session.get(f"http://127.0.0.1:{http}{path}", headers=auth, allow_redirects=False)
        assert r.status == 308 and r.headers["Location"].startswith("https://")
        # the proxy tells the panel who the client is; a client's own header is replaced
        spoof = {"Authorization": "Bearer tgp_wrong", "X-Forwarded-For": "198.51.100.9"}
        statuses = []
        for _ in range(4):
            r = await session.get(f"https://127.0.0.1:{https}{path}", headers=spoof, ssl=False)
            statuses.append(r.status)
        assert statuses == [401, 401, 401, 429]
