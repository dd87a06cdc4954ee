"""The operators' audit log: every operator request is recorded (who, what, when, the
outcome), reads of customer data included; a change also records the state of what it
changed before and after (an account with its balance, a finding, a running call).

Reads fail closed: when the record cannot be written, the operator gets 503 instead of the
data (nothing customer-related is shown unrecorded). A change is recorded after it is made;
if that record cannot be written the change stands and the failure goes to the log loudly."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import Field

from abuse import findings
from abuse.findings import FindingNotFound
from core.pg import Conn
from panel_api import outputs
from panel_api.auth import PRINCIPAL
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api
from panel_api.errors import Handler, Unavailable, translate
from panel_api.inputs import QUERY_TEXT, Input, whole
from panel_api.tokens import Role, Token
from panel_api.views import account_view, balance_view
from rating.accounts import AccountNotFound

log = logging.getLogger("tollgate.panel.audit")
api = Api("operator")
UNAUDITED = frozenset({"/api/v1/me", "/api/v1/audit"})  # nothing of a customer's in these
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# what a handler adds to its request's entry (an upload's file and outcome)
AUDIT_NOTE = web.RequestKey("audit_note", dict[str, Any])
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Entry:
    actor: str
    token_id: str
    read_only: bool
    action: str
    method: str
    path: str
    status: int
    account: str | None
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: dict[str, Any]


async def write(conn: Conn, entry: Entry, at: datetime) -> None:
    await conn.execute(
        "insert into operator_audit (at, actor, token_id, read_only, action, method, path,"
        " status, account, subject, before, after, detail)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13::jsonb)",
        at,
        entry.actor,
        entry.token_id,
        entry.read_only,
        entry.action,
        entry.method,
        entry.path,
        entry.status,
        _storable(entry.account),  # taken from the query too: it may carry a NUL
        _storable(entry.subject),
        _json(entry.before),
        _json(entry.after),
        json.dumps(_storable(entry.detail)),
    )


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(_storable(value))


def _storable(value: Any) -> Any:
    """`value` with every NUL character replaced: PostgreSQL's jsonb refuses \\u0000, and a
    request that carried one must still be recorded (else a read is refused for it)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _action(request: web.Request) -> str:
    handler = request.match_info.route.handler
    name = getattr(handler, "__name__", "unknown")
    action = request.match_info.get("action")
    return f"{name}:{action}" if action else name


async def _snapshot(request: web.Request) -> dict[str, Any] | None:
    """The state of what the request is about: an account, a finding, a running call."""
    info = request.match_info
    services = request.app[SERVICES]
    if "account" in info:
        try:
            account = await services.accounts.get(info["account"])
        except AccountNotFound:
            return None
        view = account_view(account)
        view["balance"] = balance_view(account, await services.accounts.live(account.id))
        return view
    if "finding" in info:
        try:
            return (await findings.get(request.app[POOL], int(info["finding"]))).as_dict()
        except FindingNotFound:
            return None
    if "call_id" in info:
        running = await services.ledger.running(
            info["call_id"], account=request.query.get("account", "")
        )
        return {"running": [dict(r) for r in running]}
    return None


def _concerns(
    request: web.Request, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """(the account, another subject) the request concerned."""
    info = request.match_info
    state = after or before or {}
    account = info.get("account") or request.query.get("account") or state.get("account")
    if not account and state.get("running"):
        account = state["running"][0].get("account")
    subject = (
        info.get("finding")
        or info.get("call_id")
        or info.get("name")
        or info.get("customer")
        or info.get("number")
    )
    return (str(account) if account else None), subject


async def _detail(request: web.Request) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if request.query:
        detail["query"] = dict(request.query)
    if request.method not in READS and request.content_type == "application/json":
        try:  # the endpoint has read (and checked) it already: this is aiohttp's copy
            detail["body"] = json.loads(await request.read() or b"{}")
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
            detail["body"] = None
    if note := request.get(AUDIT_NOTE):
        detail["note"] = note
    return detail


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.get(PRINCIPAL)
    if token is None or token.role is not Role.OPERATOR or request.path in UNAUDITED:
        return await handler(request)
    changes = request.method not in READS
    before = await _snapshot(request) if changes else None
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except Exception as exc:
        error = translate(exc)
        status = error.status if error is not None else 500
        await _record(request, token, status, before, None)
        raise
    after = await _snapshot(request) if changes and status < 400 else None
    written = await _record(request, token, status, before, after)
    # a read not yet sent is withheld; a download under way can only be logged
    if not written and not changes and not response.prepared:
        raise Unavailable("the audit log cannot be written", code="AUDIT_UNAVAILABLE")
    return response


async def _record(
    request: web.Request,
    token: Token,
    status: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> bool:
    account, subject = _concerns(request, before, after)
    entry = Entry(
        actor=token.actor,
        token_id=token.id,
        read_only=token.read_only,
        action=_action(request),
        method=request.method,
        path=request.path,
        status=status,
        account=account,
        subject=subject,
        before=before,
        after=after,
        detail=await _detail(request),
    )
    try:
        async with request.app[POOL].acquire() as conn:
            await write(conn, entry, datetime.now(UTC))
    except _DB_ERRORS as exc:
        log.error("AUDIT NOT WRITTEN: %s %s by %s: %r", entry.method, entry.path, entry.actor, exc)
        return False
    return True


class AuditQuery(Input):
    account: Annotated[str | None, QUERY_TEXT] = Field(None, description="Only this account's")
    actor: Annotated[str | None, QUERY_TEXT] = Field(None, description="Only this operator's")
    limit: Annotated[int, whole(1, 1000)] = Field(100, description="At most (default 100)")


def _row(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["at"] = row["at"].isoformat()
    for name in ("before", "after", "detail"):
        out[name] = json.loads(row[name]) if row[name] is not None else None
    return out


@api.get(
    "/api/v1/audit",
    "The operators' audit log, newest first",
    access=Access.OPERATOR,
    ok=outputs.AuditEntries,
)
async def audit_log(request: web.Request, query: AuditQuery) -> web.Response:
    rows = await request.app[POOL].fetch(
        "select * from operator_audit where ($1::text is null or account = $1)"
        " and ($2::text is null or actor = $2) order by at desc, id desc limit $3",
        query.account,
        query.actor,
        query.limit,
    )
    return web.json_response({"items": [_row(r) for r in rows]})
