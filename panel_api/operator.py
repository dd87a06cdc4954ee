"""Operators: accounts (list, create, change limits, suspend/resume/close) and money."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from billing.payments import money_received
from billing.settings import BillingSettings
from panel_api.auth import operator, path_account
from panel_api.context import SERVICES
from panel_api.errors import BadRequest, Conflict
from panel_api.params import field, json_object
from panel_api.views import account_view, balance_view, entry_view
from rating.account_store import ENTRY_KINDS
from rating.accounts import Account, AccountKind, AccountNotFound, AccountStatus
from rating.money import parse_micro

routes = web.RouteTableDef()

LIMITS = ("max_calls", "cps")
FLAGS = ("allow_premium", "allow_high_risk", "invoice_overdue")
AMOUNTS = ("credit_limit", "daily_cap")
STATUS = {
    "suspend": AccountStatus.SUSPENDED,
    "resume": AccountStatus.ACTIVE,
    "close": AccountStatus.CLOSED,
}


def _amount(body: dict[str, Any], name: str) -> int | None:
    text = field(body, name, str)
    return None if text is None else parse_micro(text)


def _prefixes(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = field(body, "blocked_prefixes", list)
    if value is None:
        return None
    if not all(isinstance(p, str) for p in value):
        raise BadRequest(
            "blocked_prefixes: expected an array of strings",
            {"field": "blocked_prefixes", "why": "expected an array of strings"},
            code="INVALID_FIELD",
        )
    return tuple(p.lstrip("+") for p in value if p)


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "deck" in body:
        changes["deck"] = field(body, "deck", str) or None
    for name in LIMITS:
        if (value := field(body, name, int)) is not None:
            changes[name] = value
    for name in FLAGS:
        if (value := field(body, name, bool)) is not None:
            changes[name] = value
    for name in AMOUNTS:
        if (micro := _amount(body, name)) is not None:
            changes[name] = micro
    if (prefixes := _prefixes(body)) is not None:
        changes["blocked_prefixes"] = prefixes
    return changes


async def _with_balance(request: web.Request, account: Account) -> dict[str, Any]:
    view = account_view(account)
    live = await request.app[SERVICES].accounts.live(account.id)
    view["balance"] = balance_view(account, live)
    return view


@routes.get("/api/v1/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    operator(request)
    accounts = await request.app[SERVICES].accounts.all()
    return web.json_response({"items": [account_view(a) for a in accounts]})


@routes.post("/api/v1/accounts")
async def create_account(request: web.Request) -> web.Response:
    operator(request)
    body = await json_object(request)
    account_id = field(body, "id", str, required=True)
    kind = field(body, "kind", str) or "prepaid"
    if kind not in {k.value for k in AccountKind}:
        raise BadRequest(
            "kind: prepaid or postpaid",
            {"field": "kind", "why": "prepaid or postpaid"},
            code="INVALID_FIELD",
        )
    store = request.app[SERVICES].accounts
    try:
        await store.get(account_id)
    except AccountNotFound:
        pass  # the usual case: the id is free
    else:
        raise Conflict(
            f"account {account_id!r} already exists",
            {"resource": "account", "id": account_id},
            code="ACCOUNT_EXISTS",
        )
    changes = _changes(body)
    changes.pop("invoice_overdue", None)
    account = Account(
        id=account_id,
        kind=AccountKind(kind),
        currency=field(body, "currency", str) or "PLN",
        country=(field(body, "country", str) or "PL").upper(),
        timezone=field(body, "timezone", str) or "Europe/Warsaw",
        **changes,
    )
    created = await store.create(account)
    return web.json_response(await _with_balance(request, created), status=201)


@routes.get("/api/v1/accounts/{account}")
async def get_account(request: web.Request) -> web.Response:
    operator(request)
    account = await request.app[SERVICES].accounts.get(path_account(request))
    return web.json_response(await _with_balance(request, account))


@routes.patch("/api/v1/accounts/{account}")
async def update_account(request: web.Request) -> web.Response:
    operator(request)
    body = await json_object(request)
    changes = _changes(body)
    if not changes:
        raise BadRequest("nothing to change", {"fields": sorted(body)}, code="NOTHING_TO_CHANGE")
    updated = await request.app[SERVICES].accounts.update(path_account(request), **changes)
    return web.json_response(await _with_balance(request, updated))


@routes.post(r"/api/v1/accounts/{account}/{action:suspend|resume|close}")
async def set_status(request: web.Request) -> web.Response:
    who = operator(request)
    body = await json_object(request)
    reason = field(body, "reason", str) or ""
    account = await request.app[SERVICES].accounts.set_status(
        path_account(request),
        STATUS[request.match_info["action"]],
        f"{reason} (by {who.label or who.id})".strip(),
    )
    return web.json_response(await _with_balance(request, account))


@routes.post("/api/v1/accounts/{account}/topups")
async def topup(request: web.Request) -> web.Response:
    """A ledger entry; the same reference twice adds money once (200 the second time)."""
    operator(request)
    body = await json_object(request)
    kind = field(body, "kind", str) or "topup"
    if kind not in ENTRY_KINDS:
        raise BadRequest(
            f"kind: one of {', '.join(ENTRY_KINDS)}",
            {"field": "kind", "why": f"one of {', '.join(ENTRY_KINDS)}"},
            code="INVALID_FIELD",
        )
    amount = parse_micro(field(body, "amount", str, required=True), allow_negative=True)
    if kind in ("topup", "payment", "fee") and amount < 0:
        raise BadRequest(
            "amount: must be positive (a fee is given as a positive amount)",
            {"field": "amount", "why": "must be positive"},
            code="INVALID_AMOUNT",
        )
    accounts = request.app[SERVICES].accounts
    now = datetime.now(UTC)  # one instant for the entry and what billing does with it
    entry, created = await accounts.add_entry(
        path_account(request),
        kind,
        -amount if kind == "fee" else amount,
        field(body, "reference", str) or None,
        field(body, "note", str) or "",
        at=now,
    )
    if entry.kind in ("topup", "payment"):  # invoice, overdue block, lifecycle block
        await money_received(accounts, entry, BillingSettings.from_env(), now)
    account = await accounts.get(entry.account)
    return web.json_response(
        {
            "entry": entry_view(entry),
            "created": created,
            "balance": balance_view(account, await accounts.live(entry.account)),
        },
        status=201 if created else 200,
    )
