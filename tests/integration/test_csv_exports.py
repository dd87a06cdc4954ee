"""Every CSV export applies the same formula-injection rule: the call listing (Python) and
the panel's CDR export (rendered by PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import asyncpg
import pytest

from cdr.csv_safe import defuse, sql_defused
from runtime.services import Services
from runtime.settings import Settings
from tests.conftest import AccountFactory
from tests.integration.test_billing import cdr, cli, local, store_cdrs
from tests.unit.test_csv_safe import CASES


async def test_postgresql_defuses_exactly_like_python(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        for cell, _ in CASES:
            rendered = await conn.fetchval(f"select {sql_defused('$1::text')}", cell)
            assert rendered == defuse(cell), repr(cell)
    finally:
        await conn.close()


async def test_listing_csv_defuses_callers(
    svc: Services, make_account: AccountFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await make_account()
    day = local("2026-11-10T12:00")
    evil = [cell for cell, defused in CASES if defused]
    calls = [cdr(a.id, day + timedelta(minutes=i), 60, caller=c) for i, c in enumerate(evil)]
    await store_cdrs(svc.settings.pg_dsn, calls)
    text = await cli(svc, capsys, "bill", "listing", "--account", a.id, "--period", "2026-11",
                     "--csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["caller"] for r in rows] == ["'" + c for c in evil]
