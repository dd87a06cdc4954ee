"""p99 latency under concurrent load of the panel's balance endpoint (HTTP, a separate panel
process on loopback, token check and rate limit included) and, in the same run, of one
authorization through the Python API (Redis only): what a customer waits for next to what
a call waits for. Bounded request counts; works in a throwaway database and key prefix.

    .venv/bin/python bench/panel.py [--requests 20000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg

from core import db
from panel_api.tokens import Role, TokenStore
from rating.accounts import Account
from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.keys import Keyspace
from rating.ledger import CallRequest, LedgerSettings
from runtime.services import Services, services
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("TOLLGATE_PG_DSN", "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate")


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def bench_services(tag: str) -> AsyncIterator[Services]:
    """A new database (migrated) and key prefix for this run; both removed at the end."""
    name = f"tollgate_bench_{tag}_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=REDIS_URL,
        pg_dsn=with_database(PG_DSN, name),
        keyspace=Keyspace(f"bench{tag}{uuid.uuid4().hex[:6]}", 16),
        ledger=LedgerSettings(switch_host="bench"),
    )
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'create database "{name}"')
    try:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()
        async with services(settings) as s:
            try:
                yield s
            finally:
                async for key in s.redis.scan_iter(
                    match=f"{settings.keyspace.prefix}:*", count=5000
                ):
                    await s.redis.delete(key)
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


class PanelProcess:
    """`tollgate panel` as its own process (what the lead's CLI wiring will run)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "TOLLGATE_REDIS_URL": settings.redis_url,
            "TOLLGATE_PG_DSN": settings.pg_dsn,
            "TOLLGATE_REDIS_PREFIX": settings.keyspace.prefix,
            "TOLLGATE_SHARDS": str(settings.keyspace.shards),
            "TOLLGATE_PANEL_HOST": "127.0.0.1",
            "TOLLGATE_PANEL_PORT": str(self.port),
            "TOLLGATE_PANEL_METRICS_PORT": "0",
            "TOLLGATE_PANEL_RATE": "1000000",  # measuring latency, not the limiter's refusals
            "TOLLGATE_PANEL_BURST": "1000000",
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> PanelProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from panel_api.cli import cmd_panel; cmd_panel(None)",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.process.returncode is not None:
                    break
                try:
                    async with http.get(f"{self.url}/health") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass  # not listening yet
                await asyncio.sleep(0.05)
        self.process.terminate()
        assert self.process.stderr is not None
        log = (await self.process.stderr.read()).decode(errors="replace")
        raise SystemExit(f"the panel did not start:\n{log[-2000:]}")

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        await asyncio.wait_for(self.process.wait(), 10)

    def rss_kib(self, field: str = "VmRSS") -> int:
        """From /proc: VmRSS now, or VmHWM, the peak resident set of the process so far."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/{self.process.pid}/status")


async def load(
    call: Callable[[int], Awaitable[None]], total: int, concurrency: int
) -> tuple[list[float], float]:
    """`total` calls by `concurrency` workers: each call's latency (s) and the wall time."""
    numbers = iter(range(total))
    latencies: list[float] = []

    async def worker() -> None:
        for n in numbers:
            start = time.perf_counter()
            await call(n)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=1000)[int(q * 1000) - 1] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    async with bench_services("panel") as s:
        assert s.pool is not None
        async with s.pool.acquire() as conn:
            deck, _ = await import_deck(
                conn, load_deck(ROOT / "examples/decks/retail/deck.toml"), "bench"
            )
        await publish(s.redis, s.settings.keyspace, deck)
        await s.accounts.create(Account("bench", deck="retail", max_calls=0, cps=0))
        await s.accounts.add_entry(
            "bench", "topup", 10**14, reference="bench", at=datetime.now(UTC)
        )
        _, secret = await TokenStore(s.pool).create(Role.CUSTOMER, "bench", "bench")

        async with (
            PanelProcess(s.settings) as panel,
            aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {secret}"},
                connector=aiohttp.TCPConnector(limit=args.concurrency),
            ) as http,
        ):
            url = f"{panel.url}/api/v1/accounts/bench/balance"

            async def balance(n: int) -> None:
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"balance answered {r.status}")

            await load(balance, 500, args.concurrency)  # warm-up
            http_lat, http_wall = await load(balance, args.requests, args.concurrency)

        async def authorize(n: int) -> None:
            grant = await s.ledger.authorize(
                CallRequest("bench", f"b-{n}", "601234567", "600100200")
            )
            if not grant.allowed:
                raise SystemExit(f"authorization refused: {grant}")

        await load(authorize, 500, args.concurrency)
        auth_lat, auth_wall = await load(authorize, args.requests, args.concurrency)

    print(f"load: {args.requests} requests each, {args.concurrency} concurrent, loopback")
    for name, lat, wall in (
        ("panel GET balance (HTTP)", http_lat, http_wall),
        ("authorize (Python API)", auth_lat, auth_wall),
    ):
        print(
            f"{name:26}: p50 {p(lat, 0.5):7.2f} ms  p99 {p(lat, 0.99):7.2f} ms"
            f"  {len(lat) / wall:8.0f} req/s"
        )
    print(f"ratio p99 balance / p99 authorize: {p(http_lat, 0.99) / p(auth_lat, 0.99):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
