"""PostgreSQL: connection and versioned schema migrations (`tollgate db upgrade`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from core.pg import Conn

LOCK_ID = 0x7011_6A7E  # advisory lock: one migrator at a time


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("core.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


class MigrationError(RuntimeError):
    pass


async def upgrade(conn: Conn) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    applied: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", LOCK_ID)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version integer primary key, name text not null, checksum text not null,"
            " applied_at timestamptz not null default now())"
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("select version, checksum from schema_migrations")
        }
        for m in migrations():
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(f"migration {m.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "insert into schema_migrations (version, name, checksum) values ($1,$2,$3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied.append(m.name)
    finally:
        await conn.execute("select pg_advisory_unlock($1)", LOCK_ID)
    return applied
