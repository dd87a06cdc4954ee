"""Who is asking: Bearer tokens, roles, per-token rate limits.

A customer may read only its own account; any other account answers 404 exactly like an
account that does not exist, so a customer cannot learn which accounts exist."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from panel_api.auth_guard import client_address
from panel_api.context import AUTH_GUARD, LAST_USED, LIMITER, TOKENS, TRUSTED
from panel_api.errors import Forbidden, Handler, RateLimited, Unauthenticated, not_found
from panel_api.metrics import METRICS
from panel_api.tokens import Role, Token
from rating.accounts import ACCOUNT_ID

PRINCIPAL = web.RequestKey("principal", Token)
PUBLIC = "public:"  # route names starting with this need no token


def is_public(request: web.Request) -> bool:
    name = request.match_info.route.name
    resource = request.match_info.route.resource
    return resource is None or (name is not None and name.startswith(PUBLIC))


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise Unauthenticated("an Authorization: Bearer token is required")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    # tokens are printable ASCII; bytes that are not UTF-8 reach us as lone surrogates
    if not secret.isascii() or not secret.strip().isprintable():
        raise Unauthenticated("the token is not one this panel gave out")
    return secret.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request):  # also unknown routes: they answer 404 whoever asks
        return await handler(request)
    guard = request.app[AUTH_GUARD]
    address = client_address(request, request.app[TRUSTED])
    # an address that failed too often is refused before its token costs a database query
    wait_s = await guard.blocked(address)
    if wait_s:
        request.app[METRICS].auth_blocked.inc()
        raise RateLimited(wait_s, code="AUTH_RATE_LIMITED")
    try:
        token = await request.app[TOKENS].authenticate(bearer(request), datetime.now(UTC))
        if token is None:
            raise Unauthenticated("unknown, revoked or expired token")
    except Unauthenticated:
        await guard.failed(address)
        raise
    verdict = await request.app[LIMITER].hit(token.id)
    if not verdict.allowed:
        request.app[METRICS].rate_limited.inc()
        raise RateLimited(verdict.retry_after_s)
    request.app[LAST_USED].saw(token.id)
    request[PRINCIPAL] = token
    return await handler(request)


def principal(request: web.Request) -> Token:
    return request[PRINCIPAL]


def operator(request: web.Request) -> Token:
    token = request[PRINCIPAL]
    if token.role is not Role.OPERATOR:
        raise Forbidden("this needs an operator token", {"role": token.role.value})
    return token


def admin(request: web.Request) -> Token:
    """An operator who may change things: support operators may only look."""
    token = operator(request)
    if token.read_only:
        raise Forbidden(
            "support operators may look but not change: this needs an admin",
            {"role": "support"},
            code="READ_ONLY",
        )
    return token


def path_account(request: web.Request) -> str:
    """The {account} of the path; one that cannot be an account id is simply not found."""
    account = request.match_info["account"]
    if not ACCOUNT_ID.match(account):
        raise not_found("account", account)
    return account


def readable_account(request: web.Request) -> str:
    """The {account} of the path, if this token may read it; 404 otherwise."""
    account = path_account(request)
    if not request[PRINCIPAL].may_read(account):
        raise not_found("account", account)
    return account
