"""Operators: accounts (list, create, change limits, suspend/resume/close) and money."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict

from billing.payments import money_received
from billing.settings import BillingSettings
from numbering.settings import NumberingSettings
from numbering.store import NumberStore
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import SERVICES
from panel_api.documents import BILLING
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import BadRequest, Conflict
from panel_api.inputs import (
    ACCOUNT_PATTERN,
    COUNT,
    FLAG,
    MONEY_IN,
    PREFIXES,
    SIGNED_MONEY_IN,
    TEXT,
    Input,
    StatusChange,
    choice,
    string,
)
from panel_api.views import account_view, balance_view, entry_view
from rating.account_store import ENTRY_KINDS
from rating.accounts import Account, AccountKind, AccountNotFound, AccountStatus

api = Api("operator")
OPERATOR = Access.OPERATOR
STATUS = {
    "suspend": AccountStatus.SUSPENDED,
    "resume": AccountStatus.ACTIVE,
    "close": AccountStatus.CLOSED,
}


class AccountFields(Input):
    """What an operator may set on an account, at creation or later."""

    deck: Annotated[str | None, string(200, type=["string", "null"])] = None
    credit_limit: Annotated[int | None, MONEY_IN] = None
    daily_cap: Annotated[int | None, MONEY_IN] = None
    max_calls: Annotated[int | None, COUNT] = None
    cps: Annotated[int | None, COUNT] = None
    inbound_max_calls: Annotated[int | None, COUNT] = None
    inbound_cps: Annotated[int | None, COUNT] = None
    allow_premium: Annotated[bool | None, FLAG] = None
    allow_high_risk: Annotated[bool | None, FLAG] = None
    blocked_prefixes: Annotated[tuple[str, ...] | None, PREFIXES] = None

    def changes(self, *also: str) -> dict[str, Any]:
        """The fields given; a null deck (given) takes the deck away, other nulls are absent."""
        names = [*AccountFields.model_fields, *also]
        out = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if "deck" in self.model_fields_set:
            out["deck"] = self.deck or None
        return out


class AccountCreate(AccountFields):
    id: Annotated[str, string(pattern=ACCOUNT_PATTERN).required()]
    kind: Annotated[str | None, choice(k.value for k in AccountKind)] = None
    currency: Annotated[str | None, string(pattern="^[A-Z]{3}$")] = None
    country: Annotated[str | None, string(pattern="^[A-Za-z]{2}$")] = None
    timezone: Annotated[str | None, string(64)] = None


class AccountUpdate(AccountFields):
    model_config = ConfigDict(extra="allow", json_schema_extra={"minProperties": 1})

    invoice_overdue: Annotated[bool | None, FLAG] = None


class Topup(Input):
    amount: Annotated[int, SIGNED_MONEY_IN.required()]
    kind: Annotated[str | None, choice(ENTRY_KINDS)] = None
    reference: Annotated[str | None, TEXT] = None
    note: Annotated[str | None, TEXT] = None


async def _with_balance(request: web.Request, account: Account) -> dict[str, Any]:
    view = account_view(account)
    live = await request.app[SERVICES].accounts.live(account.id)
    view["balance"] = balance_view(account, live)
    return view


@api.get("/api/v1/accounts", "All accounts", access=OPERATOR, ok=outputs.Accounts)
async def list_accounts(request: web.Request) -> web.Response:
    accounts = await request.app[SERVICES].accounts.all()
    return web.json_response({"items": [account_view(a) for a in accounts]})


@api.post(
    "/api/v1/accounts",
    "Create an account",
    access=OPERATOR,
    replies=(Reply(201, "Created", outputs.AccountWithBalance),),
    errors=(409,),
)
async def create_account(request: web.Request, body: AccountCreate) -> web.Response:
    store = request.app[SERVICES].accounts
    try:
        await store.get(body.id)
    except AccountNotFound:
        pass  # the usual case: the id is free
    else:
        raise Conflict(
            f"account {body.id!r} already exists",
            {"resource": "account", "id": body.id},
            code="ACCOUNT_EXISTS",
        )
    account = Account(
        id=body.id,
        kind=AccountKind(body.kind or "prepaid"),
        currency=body.currency or "PLN",
        country=(body.country or "PL").upper(),
        # the operator's books' zone unless the account has its own
        timezone=body.timezone or request.app[BILLING].timezone,
        **body.changes(),
    )
    created = await store.create(account)
    return web.json_response(await _with_balance(request, created), status=201)


@api.get(
    "/api/v1/accounts/{account}",
    "One account with its balance",
    access=OPERATOR,
    ok=outputs.AccountWithBalance,
)
async def get_account(request: web.Request, account: str) -> web.Response:
    found = await request.app[SERVICES].accounts.get(account)
    return web.json_response(await _with_balance(request, found))


@api.patch(
    "/api/v1/accounts/{account}",
    "Change limits and settings",
    access=OPERATOR,
    ok=outputs.AccountWithBalance,
    errors=(409,),
)
async def update_account(request: web.Request, account: str, body: AccountUpdate) -> web.Response:
    changes = body.changes("invoice_overdue")
    if not changes:
        given = sorted(body.model_fields_set | set(body.model_extra or {}))
        raise BadRequest("nothing to change", {"fields": given}, code="NOTHING_TO_CHANGE")
    updated = await request.app[SERVICES].accounts.update(account, **changes)
    return web.json_response(await _with_balance(request, updated))


@api.post(
    "/api/v1/accounts/{account}/{action}",
    "Change an account's status",
    access=OPERATOR,
    ok=outputs.AccountWithBalance,
    errors=(409,),
    body_required=False,
    actions={
        "suspend": "Suspend (calls are refused; running ones are hung up by session control)",
        "resume": "Resume a suspended account",
        "close": "Close the account for good",
    },
    op_id="account",
)
async def set_status(request: web.Request, account: str, body: StatusChange) -> web.Response:
    who = principal(request)
    status = STATUS[request.match_info["action"]]
    why = f"{body.reason or ''} (by {who.label or who.id})".strip()
    services = request.app[SERVICES]
    if status is AccountStatus.CLOSED:  # its numbers go into quarantine with it
        numbers = NumberStore(
            services.accounts.pool, services.accounts, NumberingSettings.from_env()
        )
        found, _ = await numbers.close_account(
            account, why, at=datetime.now(UTC), actor=who.label or who.id
        )
    else:
        found = await services.accounts.set_status(account, status, why)
    return web.json_response(await _with_balance(request, found))


@api.post(
    "/api/v1/accounts/{account}/topups",
    "Add a ledger entry (top-up, payment, adjustment, fee); 200 for a reference already recorded",
    access=OPERATOR,
    replies=(
        Reply(201, "Created", outputs.TopupResult),
        Reply(200, "Already recorded (same reference)", outputs.TopupResult),
    ),
    errors=(409,),
)
async def topup(request: web.Request, account: str, body: Topup) -> web.Response:
    """A ledger entry; the same reference twice adds money once (200 the second time)."""
    kind, amount = body.kind or "topup", body.amount
    if kind in ("topup", "payment", "fee") and amount < 0:
        raise BadRequest(
            "amount: must be positive (a fee is given as a positive amount)",
            {"field": "amount", "why": "must be positive"},
            code="INVALID_AMOUNT",
        )
    accounts = request.app[SERVICES].accounts
    now = datetime.now(UTC)  # one instant for the entry and what billing does with it
    entry, created = await accounts.add_entry(
        account,
        kind,
        -amount if kind == "fee" else amount,
        body.reference or None,
        body.note or "",
        at=now,
    )
    if entry.kind in ("topup", "payment"):  # invoice, overdue block, lifecycle block
        await money_received(accounts, entry, BillingSettings.from_env(), now)
    found = await accounts.get(entry.account)
    return web.json_response(
        {
            "entry": entry_view(entry),
            "created": created,
            "balance": balance_view(found, await accounts.live(entry.account)),
        },
        status=201 if created else 200,
    )
