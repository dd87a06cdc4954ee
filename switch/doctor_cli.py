"""`tollgate asterisk check` handler: run the doctor's checks, print OK/FAIL per item (or
one JSON document with --json), exit 1 when anything failed."""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

import asyncpg

from core.cliout import EXIT_UNAVAILABLE, CliError
from core.loop import run_async
from switch.ami import AmiSettings
from switch.ari import AriSettings
from switch.doctor import run_checks


def _probe(dsn: str) -> Callable[[], Awaitable[str | None]]:
    async def probe() -> str | None:
        """An active SIP login for Asterisk to look up (None without a database or login)."""
        if not dsn:
            return None
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return None
        try:
            login: str | None = await conn.fetchval(
                "select login from sip_logins where status = 'active' order by login limit 1"
            )
            return login
        except asyncpg.PostgresError:
            return None
        finally:
            await conn.close()

    return probe


def cmd_check(args: argparse.Namespace) -> None:
    ari = AriSettings.from_env()
    ari = replace(
        ari,
        url=(args.ari_url or ari.url).rstrip("/"),
        user=args.ari_user or ari.user,
        password=args.ari_password if args.ari_password is not None else ari.password,
        app=args.app or ari.app,
    )
    if not ari.url:
        raise CliError("no ARI URL: pass --ari-url or set TOLLGATE_ARI_URL")
    ami = AmiSettings.from_env()
    report = run_async(run_checks(ari, ami, _probe(os.environ.get("TOLLGATE_PG_DSN", ""))))
    print(report.json() if args.json else report.text(), flush=True)
    failed = [i.name for i in report.items if not i.ok]
    if failed:
        raise CliError(f"{len(failed)} check(s) failed: {', '.join(failed)}", EXIT_UNAVAILABLE)
