"""What the import benchmarks share: a throwaway PostgreSQL database and Redis key prefix,
removed afterwards, and `tollgate` commands timed as processes of their own (as an
operator runs them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from core import db

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("TOLLGATE_PG_DSN", "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate")
UNLINK_BATCH = 5000  # keys removed per round trip


@dataclass(frozen=True)
class Scratch:
    """A database and a key prefix of the run's own, and the environment pointing at them."""

    dsn: str
    prefix: str
    env: dict[str, str]
    redis: Redis

    def tollgate(self, *argv: str) -> float:
        """Seconds `tollgate ARGV` took, start-up included."""
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tollgate.cli", *argv],
            env=self.env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started

    async def migrate(self) -> None:
        """The schema, applied in this process (for benches that time no command)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await db.upgrade(conn)
        finally:
            await conn.close()


@asynccontextmanager
async def scratch(kind: str) -> AsyncIterator[Scratch]:
    """A fresh database `tollgate_bench_*` and Redis prefix `bench<kind>*`, both removed
    afterwards, also when the run fails."""
    name = f"tollgate_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench{kind}{uuid.uuid4().hex[:8]}"
    dsn = urlunsplit(urlsplit(PG_DSN)._replace(path=f"/{name}"))
    env = {
        **os.environ,
        "TOLLGATE_PG_DSN": dsn,
        "TOLLGATE_REDIS_URL": REDIS_URL,
        "TOLLGATE_REDIS_PREFIX": prefix,
    }
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'create database "{name}"')
    redis = Redis.from_url(REDIS_URL)
    try:
        yield Scratch(dsn, prefix, env, redis)
    finally:
        doomed = [k async for k in redis.scan_iter(match=f"{prefix}*", count=UNLINK_BATCH)]
        for start in range(0, len(doomed), UNLINK_BATCH):
            await redis.unlink(*doomed[start : start + UNLINK_BATCH])
        await redis.aclose()
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
