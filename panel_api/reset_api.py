"""Password reset over HTTP: ask for a link (same answer whether the login exists or not),
then set the new password with it. Both count against the client address's guard like a
failed sign-in, so one client cannot probe or flood; both are written to the audit log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import Field

from panel_api import audit, outputs
from panel_api.auth_guard import client_address
from panel_api.context import AUTH_GUARD, PANEL, POOL, RESETS, TRUSTED
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import BadRequest, Forbidden, RateLimited
from panel_api.inputs import Input, choice, string
from panel_api.metrics import METRICS
from panel_api.password_reset import ResetRefused

log = logging.getLogger("tollgate.panel.reset")
api = Api("session")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class ResetAsk(Input):
    login: Annotated[str, string(254).required()] = Field(
        description="The login, or the e-mail address it is reached at"
    )
    language: Annotated[str | None, choice(("pl", "en"))] = Field(
        None, description="The mail's language when the login has no customer record"
    )


class ResetDo(Input):
    token: Annotated[str, string(128).required()] = Field(description="The secret from the link")
    password: Annotated[str, string(256).required()]


async def _guarded(request: web.Request) -> str:
    """The client's address, after refusing one that failed too often; this try counts."""
    guard = request.app[AUTH_GUARD]
    address = client_address(request, request.app[TRUSTED])
    if wait_s := await guard.blocked(address):
        request.app[METRICS].auth_blocked.inc()
        raise RateLimited(wait_s, code="AUTH_RATE_LIMITED")
    await guard.failed(address)
    return address


async def _audit(
    request: web.Request, action: str, status: int, login: str, account: str | None, **detail: Any
) -> None:
    entry = audit.Entry(
        actor=login,
        token_id="",
        read_only=False,
        action=action,
        method=request.method,
        path=request.path,
        status=status,
        account=account,
        subject=login,
        before=None,
        after=None,
        detail=detail,
    )
    try:
        async with request.app[POOL].acquire() as conn:
            await audit.write(conn, entry, datetime.now(UTC))
    except _DB_ERRORS as exc:  # the reset stands; its record is missing: say so loudly
        log.error("AUDIT NOT WRITTEN: %s for %s: %r", action, login, exc)


@api.post(
    "/api/v1/session/reset",
    "Ask for a password-reset link by e-mail (the same answer whether the login exists)",
    access=Access.PUBLIC,
    replies=(Reply(202, "Taken: a link is mailed if the login exists", outputs.Accepted),),
    errors=(400, 403, 429, 503),
)
async def ask_reset(request: web.Request, body: ResetAsk) -> web.Response:
    public_url = request.app[PANEL].public_url
    if not public_url:
        raise Forbidden("password reset by e-mail is not configured", code="RESET_NOT_CONFIGURED")
    address = await _guarded(request)
    now = datetime.now(UTC)  # read once, here at the edge
    issued = await request.app[RESETS].request(body.login, public_url, body.language, now)
    for i in issued:
        await _audit(request, "password_reset_request", 202, i.login, i.account, address=address)
    if not issued:
        log.info("password reset asked from %s: nothing mailed", address)
    return web.json_response({"status": "accepted"}, status=202)


@api.post(
    "/api/v1/session/reset/confirm",
    "Set a new password with a reset link's secret: once; every session of the login ends",
    access=Access.PUBLIC,
    replies=(Reply(200, "Password set", outputs.ResetDone),),
    errors=(400, 429, 503),
)
async def confirm_reset(request: web.Request, body: ResetDo) -> web.Response:
    address = await _guarded(request)
    try:
        done = await request.app[RESETS].complete(body.token, body.password, datetime.now(UTC))
    except ResetRefused as exc:
        raise BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code=exc.code) from None
    await _audit(
        request,
        "password_reset",
        200,
        done.login,
        done.account,
        address=address,
        sessions_ended=done.sessions_ended,
    )
    return web.json_response({"login": done.login, "sessions_ended": done.sessions_ended})
