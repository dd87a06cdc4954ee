"""Another customer's /balance latency while one customer stalls downloads, and while it
pulls a big monthly statement (a separate panel process on loopback, default settings).

  1. baseline: the other customer's /balance, sequentially;
  2. the same while 10 CSV downloads (5 tokens of one customer x 2) read their status line
     and then nothing more;
  3. the same, for as long as that customer downloads its statement of --calls calls
     (3 at once).
Works in a throwaway database and key prefix.

    .venv/bin/python bench/panel_stall.py [--calls 80000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.csv_export import FILL_CDRS, FILL_IDS
from bench.panel import PanelProcess, bench_services
from cdr.partitions import ensure_months, month_of
from panel_api.tokens import Role, TokenStore
from rating.accounts import Account

GREEDY, OTHER = "greedy", "other"
START = datetime(2026, 3, 5, tzinfo=UTC)  # the calls: one a second from here, all in March
PERIOD = {"from": "2026-03-01T00:00:00+00:00", "to": "2026-04-01T00:00:00+00:00"}


async def stalled(port: int, path: str, secret: str) -> tuple[int, socket.socket]:
    """GET, read the status line, then read nothing (a tiny receive window)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock, f"GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {secret}\r\n\r\n".encode()
    )
    line = b""
    try:
        async with asyncio.timeout(10):
            while not line.endswith(b"\r\n"):
                line += await loop.sock_recv(sock, 1)
    except TimeoutError:
        return 0, sock  # no status line within 10 s
    return int(line.split()[1]), sock


async def latencies(http: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    """Latencies (ms) of up to `n` requests; stops at the first that takes over 10 s."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(10), http.get(url) as r:
                await r.read()
                assert r.status == 200, r.status
        except TimeoutError:
            print(f"  no answer within 10 s (after {len(out)} answered)")
            return out or [10_000.0]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(label: str, ms: list[float]) -> None:
    print(f"{label}: n={len(ms)} p50={statistics.median(ms):.1f} ms max={max(ms):.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=80_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    async with bench_services("stall") as s:
        assert s.pool is not None
        await s.accounts.create(Account(GREEDY))
        await s.accounts.create(Account(OTHER))
        store = TokenStore(s.pool)
        greedy = [(await store.create(Role.CUSTOMER, GREEDY, "bench"))[1] for _ in range(5)]
        _, other = await store.create(Role.CUSTOMER, OTHER, "bench")
        async with s.pool.acquire() as conn:
            await ensure_months(conn, {month_of(START)})
            await conn.execute(FILL_IDS, GREEDY, START, args.calls)
            await conn.execute(FILL_CDRS, GREEDY, START, args.calls)
            await conn.execute("analyze cdrs")
        async with (
            PanelProcess(s.settings) as panel,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {other}"}) as http,
        ):
            balance = f"{panel.url}/api/v1/accounts/{OTHER}/balance"
            show("baseline /balance", await latencies(http, balance, args.requests))

            query = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in PERIOD.items())
            csv = f"/api/v1/accounts/{GREEDY}/cdrs.csv?{query}"
            held = [await stalled(panel.port, csv, t) for t in greedy for _ in range(2)]
            print("10 stalled downloads answered:", sorted(status for status, _ in held))
            show("/balance, 10 downloads stalled", await latencies(http, balance, args.requests))
            for _, sock in held:
                sock.close()

            statement = f"{panel.url}/api/v1/accounts/{GREEDY}/statements/2026-03"

            async def pull(secret: str) -> tuple[int, float]:
                t0 = time.perf_counter()
                async with (
                    aiohttp.ClientSession() as own,
                    own.get(statement, headers={"Authorization": f"Bearer {secret}"}) as r,
                ):
                    body = await r.read()
                return len(body), time.perf_counter() - t0

            pulls = asyncio.gather(*(pull(t) for t in greedy[:3]))
            during: list[float] = []
            while not pulls.done():  # for as long as the statements take
                during += await latencies(http, balance, 10)
            for size, took in await pulls:
                print(f"statement of {args.calls} calls: {size / 1e6:.1f} MB in {took:.2f} s")
            show("/balance, 3 statements downloading", during)


if __name__ == "__main__":
    asyncio.run(main())
