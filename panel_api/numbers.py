"""Numbers (DIDs): operators keep the inventory and assign, release and port out numbers;
a customer sees its account's numbers and chooses its caller id among them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field

from numbering.model import NumberStatus, NumberType
from numbering.settings import NumberingSettings
from numbering.store import NumberStore, get_number, list_numbers
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api
from panel_api.errors import BadRequest
from panel_api.inputs import (
    ACCOUNT_PATTERN,
    FLAG,
    MONEY_IN,
    NUMBER,
    NUMBER_PATTERN,
    QUERY_TEXT,
    TEXT,
    Input,
    choice,
    string,
)

api = Api("numbers")
OPERATOR = Access.OPERATOR
E164 = r"{number:[+]?[0-9]{1,15}}"


class NumberPath(Input):
    number: Annotated[str, string(16, pattern=NUMBER_PATTERN).required()]


class NumbersQuery(Input):
    status: Annotated[str | None, choice(s.value for s in NumberStatus)] = Field(
        None, description="Only numbers in this state"
    )
    account: Annotated[str | None, QUERY_TEXT] = Field(None, description="Only this account's")


class NumberAdd(Input):
    number: Annotated[str, NUMBER.required()]
    carrier: Annotated[str, string(64).required()]
    monthly_cost: Annotated[int, MONEY_IN.required()]
    monthly_price: Annotated[int, MONEY_IN.required()]
    type: Annotated[str | None, choice(t.value for t in NumberType)] = None


class NumberAction(Input):
    account: Annotated[str | None, string(64, pattern=ACCOUNT_PATTERN)] = None
    caller_id: Annotated[bool | None, FLAG] = None
    reason: Annotated[str | None, TEXT] = None


class CallerId(Input):
    number: Annotated[str | None, string(16, pattern=NUMBER_PATTERN, type=["string", "null"])]


def _store(request: web.Request) -> NumberStore:
    services = request.app[SERVICES]
    return NumberStore(request.app[POOL], services.accounts, NumberingSettings.from_env())


def _who(request: web.Request) -> str:
    token = principal(request)
    return f"panel:{token.label or token.id}"


@api.get("/api/v1/numbers", "The number inventory", access=OPERATOR, ok=outputs.Numbers)
async def list_dids(request: web.Request, query: NumbersQuery) -> web.Response:
    status = NumberStatus(query.status) if query.status else None
    found = await list_numbers(request.app[POOL], status=status, account=query.account)
    return web.json_response({"items": [d.as_dict() for d in found]})


@api.post(
    "/api/v1/numbers",
    "Add a number to the inventory (free)",
    access=OPERATOR,
    ok=outputs.Number,
    errors=(409,),
)
async def add_did(request: web.Request, body: NumberAdd) -> web.Response:
    did = await _store(request).add(
        body.number,
        carrier=body.carrier,
        monthly_cost=body.monthly_cost,
        monthly_price=body.monthly_price,
        type=NumberType(body.type) if body.type else None,
        at=datetime.now(UTC),
        actor=_who(request),
    )
    return web.json_response(did.as_dict(), status=201)


@api.get(
    "/api/v1/numbers/{number}",
    "One number",
    access=OPERATOR,
    ok=outputs.Number,
    route=f"/api/v1/numbers/{E164}",
)
async def get_did(request: web.Request, path: NumberPath) -> web.Response:
    e164 = _store(request).canonical(path.number)
    return web.json_response((await get_number(request.app[POOL], e164)).as_dict())


@api.post(
    "/api/v1/numbers/{number}/{action}",
    "Assign, release or port out a number",
    access=OPERATOR,
    ok=outputs.Number,
    errors=(409,),
    route=f"/api/v1/numbers/{E164}/{{action}}",
    body_required=False,
    actions={
        "assign": "Give the free number to `account` (starts its monthly fee)",
        "release": "Take it back into quarantine (ends its fee)",
        "port-out": "It leaves for another operator (§4.5-4.6 of the terms)",
    },
    op_id="number",
)
async def number_action(request: web.Request, path: NumberPath, body: NumberAction) -> web.Response:
    store, now, who = _store(request), datetime.now(UTC), _who(request)
    action = request.match_info["action"]
    if action == "assign":
        if not body.account:
            raise BadRequest(
                "account: required", {"field": "account", "why": "required"}, code="INVALID_FIELD"
            )
        did = await store.assign(
            path.number, body.account, at=now, actor=who, caller_id=bool(body.caller_id)
        )
    elif action == "release":
        did = await store.release(path.number, at=now, actor=who, reason=body.reason or "")
    else:
        did = await store.port_out(path.number, at=now, actor=who)
    return web.json_response(did.as_dict())


@api.get(
    "/api/v1/accounts/{account}/numbers",
    "The account's numbers and its caller id",
    ok=outputs.AccountNumbers,
)
async def own_numbers(request: web.Request, account: str) -> web.Response:
    found = await request.app[SERVICES].accounts.get(account)
    return web.json_response({"numbers": list(found.numbers), "caller_id": found.caller_id})


@api.post(
    "/api/v1/accounts/{account}/caller-id",
    "Choose the number the account's calls present (one of its own; null: withheld)",
    ok=outputs.AccountNumbers,
)
async def choose_caller_id(request: web.Request, account: str, body: CallerId) -> web.Response:
    await _store(request).set_caller_id(account, body.number, at=datetime.now(UTC))
    found = await request.app[SERVICES].accounts.get(account)
    return web.json_response({"numbers": list(found.numbers), "caller_id": found.caller_id})
