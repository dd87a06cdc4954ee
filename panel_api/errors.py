"""API errors: an HTTP status, a stable upper-case code and details, rendered as
{"error": {"code", "message", "details"}}.

Domain errors (rating, cdr) know nothing of HTTP; `translate` maps them here, at the edge,
and the middleware renders whatever a handler raised."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web

from abuse.findings import FindingNotFound, FindingStateError
from billing.complaints import ComplaintError
from billing.errors import BillingError
from billing.gateway import SignatureError
from billing.price_changes import PriceNoticeTooShort
from customers.model import CustomerConflict, CustomerError, CustomerNotFound
from customers.sip import SipError, SipLoginNotFound
from numbering.model import NumberConflict, NumberError, NumberNotFound
from panel_api.logins import LoginError
from panel_api.tokens import TokenError, TokenNotFound
from rating.account_import import ImportErrors
from rating.account_store import ReferenceConflict
from rating.accounts import AccountError, AccountNotFound
from rating.carriers import CarrierConflict, CarrierError, CarrierNotFound
from rating.deck import DeckError
from rating.deck_store import DeckNotFound
from rating.money import MoneyError, format_micro
from rating.plans import PlanConflict, PlanError, PlanNotFound
from runtime.services import ServiceUnavailable

log = logging.getLogger("tollgate.panel")

STREAMING = web.RequestKey("streaming", bool)  # a streamed response has been started

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


class BadRequest(ApiError):
    status = 400
    code = "INVALID_REQUEST"


class Unauthenticated(ApiError):
    status = 401
    code = "UNAUTHENTICATED"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details, headers={"WWW-Authenticate": 'Bearer realm="tollgate"'})


class BadSignature(ApiError):
    """A payment notification not signed by the gateway, or a stale one."""

    status = 401
    code = "BAD_SIGNATURE"


class SignInRefused(Unauthenticated):
    code = "SIGN_IN_REFUSED"


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ApiError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unprocessable(ApiError):
    status = 422
    code = "VALIDATION_FAILED"


class RateLimited(ApiError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int, *, code: str | None = None) -> None:
        super().__init__(
            f"too many requests: retry in {retry_after_s} s",
            {"retry_after_s": retry_after_s},
            code=code,
            headers={"Retry-After": str(retry_after_s)},
        )


class BadGateway(ApiError):
    status = 502
    code = "SWITCH_ERROR"


class Unavailable(ApiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # a busy or unreachable service is worth another try soon
        super().__init__(
            message, details, code=code, headers={"Retry-After": "1", **(headers or {})}
        )


class RequestTimeout(ApiError):
    status = 408
    code = "REQUEST_TIMEOUT"


def not_found(resource: str, ident: str | int) -> NotFound:
    return NotFound(f"no {resource} {ident!r}", {"resource": resource, "id": str(ident)})


# redis-py's errors, asyncpg's connection-level errors and socket errors all mean "a service
# is down", never "the request was bad".
_DOWN: tuple[type[BaseException], ...] = (
    ServiceUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionRefusedError,
    TimeoutError,
)


def translate(exc: BaseException) -> ApiError | None:
    """The API error for a domain error, or None when it is not one we know."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AccountNotFound):
        return not_found("account", exc.account)
    if isinstance(exc, AccountError):
        if exc.field == "status":
            return Conflict(str(exc), {"field": exc.field, "why": exc.why}, code="ACCOUNT_CLOSED")
        return BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code="INVALID_FIELD")
    if isinstance(exc, ReferenceConflict):
        return Conflict(
            str(exc),
            {
                "field": "reference",
                "reference": exc.existing.reference,
                "existing": {
                    "kind": exc.existing.kind,
                    "amount": format_micro(exc.existing.amount),
                },
                "given": {"kind": exc.kind, "amount": format_micro(exc.amount)},
            },
            code="REFERENCE_CONFLICT",
        )
    if isinstance(exc, MoneyError):
        return BadRequest(str(exc), {"why": exc.why}, code="INVALID_AMOUNT")
    if isinstance(exc, ImportErrors):
        details = {"errors": [e.as_dict() for e in exc.errors], "total": exc.total}
        return Unprocessable(str(exc), details, code=exc.code)
    if isinstance(exc, DeckError):
        return Unprocessable(
            str(exc), {"file": exc.file, "line": exc.line, "why": exc.why}, code="DECK_INVALID"
        )
    if isinstance(exc, DeckNotFound):
        return not_found("deck", exc.name)
    if isinstance(exc, PriceNoticeTooShort):
        return Unprocessable(
            str(exc),
            {
                "field": exc.field,
                "earliest_at": exc.earliest_at.isoformat(),
                "increases": exc.increases,
            },
            code=exc.code,
        )
    if isinstance(exc, FindingNotFound):
        return not_found("finding", exc.finding_id)
    if isinstance(exc, FindingStateError):
        return Conflict(
            str(exc),
            {"id": exc.finding_id, "status": exc.status, "change": exc.change},
            code="FINDING_STATE",
        )
    if isinstance(exc, ComplaintError):
        details = {"field": exc.field, "why": exc.why}
        if exc.code == "UNKNOWN_COMPLAINT":
            return NotFound(str(exc), {"resource": "complaint", **details})
        cls = (
            Conflict
            if exc.code in ("COMPLAINT_CLOSED", "COMPLAINT_DEEMED_ACCEPTED")
            else BadRequest
        )
        return cls(str(exc), details, code=exc.code)
    if isinstance(exc, SignatureError):
        return BadSignature(str(exc), {"field": exc.field, "why": exc.why})
    if isinstance(exc, BillingError | TokenError | LoginError):
        return BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code="INVALID_FIELD")
    if isinstance(exc, CustomerNotFound):
        return not_found("customer", exc.customer)
    if isinstance(exc, CarrierNotFound):
        return not_found("carrier", exc.name)
    if isinstance(exc, PlanNotFound):
        return not_found("plan", exc.name)
    if isinstance(exc, PlanConflict):
        return Conflict(str(exc), {"field": exc.field, "why": exc.why}, code=exc.code)
    if isinstance(exc, PlanError):
        return BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code="INVALID_FIELD")
    if isinstance(exc, CarrierConflict):
        return Conflict(str(exc), {"field": exc.field, "why": exc.why}, code=exc.code)
    if isinstance(exc, CarrierError):
        return BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code="INVALID_FIELD")
    if isinstance(exc, NumberNotFound):
        return not_found("number", exc.number)
    if isinstance(exc, CustomerConflict | NumberConflict):
        return Conflict(str(exc), {"field": exc.field, "why": exc.why}, code=exc.code)
    if isinstance(exc, CustomerError | NumberError):
        return BadRequest(str(exc), {"field": exc.field, "why": exc.why}, code="INVALID_FIELD")
    if isinstance(exc, TokenNotFound):
        return not_found("token", exc.token_id)
    if isinstance(exc, SipLoginNotFound):
        return NotFound(exc.message, {"resource": "sip_login", "field": exc.field})
    if isinstance(exc, SipError):
        if exc.code == "UNKNOWN_ACCOUNT":
            return NotFound(exc.message, {"resource": "account", "field": exc.field})
        cls = Conflict if exc.code in ("SIP_LOGIN_EXISTS", "ACCOUNT_CLOSED") else BadRequest
        return cls(str(exc), {"field": exc.field}, code=exc.code)
    if isinstance(exc, TimeoutError):
        # above all: no PostgreSQL connection free within the pool's acquire timeout
        return Unavailable("the service is busy: try again shortly", code="BUSY")
    if isinstance(exc, _DOWN):
        # the cause goes to the log, not to whoever asked
        log.warning("service unreachable: %r", exc)
        return Unavailable("a service is unreachable")
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own (unknown route, wrong method, body too large) in our error format
        if exc.status == 404:
            return NotFound("no such resource", {"path": request.path}).response()
        if exc.status == 405:
            return MethodNotAllowed(
                f"{request.method} is not allowed here", {"method": request.method}
            ).response()
        if exc.status == 413:
            return PayloadTooLarge("request body too large").response()
        if exc.status < 400:
            raise
        return ApiError(exc.reason, code=f"HTTP_{exc.status}").response()
    except Exception as exc:
        if request.get(STREAMING):
            # the status line is gone: all that is left is cutting the transfer short, which
            # the client sees as an incomplete (chunked) body
            log.error("%s %s failed mid-stream: %r", request.method, request.path, exc)
            raise
        error = translate(exc)
        if error is None:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return ApiError("internal error").response()
        if error.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, error.message)
        return error.response()
