"""Signing in with a login and a password (the browser's way in) and signing out.

A sign-in yields a panel token of its own, short-lived and bound to the login: the page then
sends it like any API token. Failures count per login (lockout, panel_api.logins) and per
client address (the auth guard every failed authentication feeds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web

from panel_api import outputs
from panel_api.auth import principal
from panel_api.auth_guard import client_address
from panel_api.context import AUTH_GUARD, LOGINS, TOKENS, TRUSTED
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import RateLimited, SignInRefused
from panel_api.inputs import Input, string
from panel_api.logins import LoginLocked, WrongCredentials
from panel_api.metrics import METRICS

api = Api("session")


class Credentials(Input):
    login: Annotated[str, string(64).required()]
    password: Annotated[str, string(256).required()]


@api.post(
    "/api/v1/session",
    "Sign in with a login and a password: a session token (hours, not days)",
    access=Access.PUBLIC,
    replies=(Reply(201, "Signed in", outputs.Session),),
    errors=(400, 401, 429, 503),
)
async def sign_in(request: web.Request, body: Credentials) -> web.Response:
    guard = request.app[AUTH_GUARD]
    address = client_address(request, request.app[TRUSTED])
    if wait_s := await guard.blocked(address):
        request.app[METRICS].auth_blocked.inc()
        raise RateLimited(wait_s, code="AUTH_RATE_LIMITED")
    try:
        session = await request.app[LOGINS].sign_in(
            body.login, body.password, datetime.now(UTC), request.app[TOKENS]
        )
    except WrongCredentials:
        await guard.failed(address)
        raise SignInRefused("wrong login or password") from None
    except LoginLocked as exc:
        await guard.failed(address)
        raise RateLimited(exc.retry_after_s, code="LOGIN_LOCKED") from None
    return web.json_response({**session.token.as_dict(), "token": session.secret}, status=201)


@api.post(
    "/api/v1/session/end",
    "Sign out: the token in use is revoked",
    ok=outputs.Token,
    body_required=False,
)
async def sign_out(request: web.Request) -> web.Response:
    token = await request.app[TOKENS].revoke(principal(request).id)
    return web.json_response(token.as_dict())
