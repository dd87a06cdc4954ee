"""`tollgate panel` (serve the API and the customer page) and `tollgate token ...`.

`register(subparsers)` adds them to tollgate's parser. Like tollgate's own commands each
prints one JSON document; bad input is the CLI's exit-2 error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime

from core.cliout import bad_input, print_json
from core.loop import run_async
from panel_api.logins import LoginError, LoginRole, LoginStore
from panel_api.settings import PanelSettings
from panel_api.tokens import Role, TokenError, TokenNotFound, TokenStore
from rating.accounts import AccountNotFound
from runtime.services import Services
from runtime.settings import Settings

log = logging.getLogger("tollgate.panel")


def _tokens(s: Services) -> TokenStore:
    assert s.pool is not None
    return TokenStore(s.pool)


async def cmd_token_create(s: Services, args: argparse.Namespace) -> None:
    with bad_input(TokenError, TokenNotFound):
        token, secret = await _tokens(s).create(
            Role(args.role), args.account, args.label, now=datetime.now(UTC), days=args.expires_days
        )
    print_json(
        {
            **token.as_dict(),
            "token": secret,
            "note": "the token is shown only now: keep it; only its SHA-256 is stored",
        }
    )


async def cmd_token_rotate(s: Services, args: argparse.Namespace) -> None:
    with bad_input(TokenError, TokenNotFound):
        token, secret = await _tokens(s).rotate(
            args.id, now=datetime.now(UTC), days=args.expires_days
        )
    print_json(
        {
            **token.as_dict(),
            "token": secret,
            "note": f"replaces {args.id}, which is revoked now; the token is shown only now",
        }
    )


async def cmd_token_revoke(s: Services, args: argparse.Namespace) -> None:
    with bad_input(TokenError, TokenNotFound):
        token = await _tokens(s).revoke(args.id)
    print_json(token.as_dict())


async def cmd_token_list(s: Services, args: argparse.Namespace) -> None:
    print_json([t.as_dict() for t in await _tokens(s).all(args.account)])


async def cmd_login_set(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    password = sys.stdin.readline().rstrip("\r\n")
    with bad_input(LoginError, AccountNotFound):
        login = await LoginStore(s.pool).set(
            args.name, LoginRole(args.role), password, args.account, args.email
        )
    print_json(login.as_dict())


async def cmd_login_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    print_json([login.as_dict() for login in await LoginStore(s.pool).all()])


async def serve(settings: Settings, panel: PanelSettings) -> None:
    from panel_api.app import build_app
    from panel_api.server import CappedSite
    from panel_api.server import runner as panel_runner

    runner = panel_runner(build_app(settings, panel), panel)
    await runner.setup()  # runs the cleanup contexts: Redis, PostgreSQL, ...
    try:
        await CappedSite(runner, panel.host, panel.port, panel.max_connections).start()
        log.info("panel on %s:%d, metrics on :%d", panel.host, panel.port, panel.metrics_port)
        print(f"tollgate: panel on http://{panel.host}:{panel.port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_panel(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_async(serve(Settings.from_env(), PanelSettings.from_env()))
