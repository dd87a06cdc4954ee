"""Customer records: operators list, create, change and verify them and export a customer's
personal data; a customer reads its own record and changes its contact data (§3.6, §3.9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict, Field

from customers.model import CONTACT_FIELDS, Customer, CustomerKind, Verification
from customers.privacy import export_personal_data
from customers.store import (
    CustomerStore,
    accounts_of,
    customer_of_account,
    get_customer,
)
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, SERVICES
from panel_api.customer_search import search_customers
from panel_api.endpoint import Access, Api, Reply
from panel_api.errors import BadRequest, not_found
from panel_api.inputs import ACCOUNT_PATTERN, QUERY_TEXT, TEXT, Input, choice, string
from panel_api.tokens import Token

api = Api("customers")
OPERATOR = Access.OPERATOR
ID = r"{customer:[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}}"
SHORT = string(200)


class CustomerPath(Input):
    customer: Annotated[str, string(64, pattern=ACCOUNT_PATTERN).required()]


class CustomersQuery(Input):
    verification: Annotated[str | None, choice(v.value for v in Verification)] = Field(
        None, description="Only records in this state"
    )
    q: Annotated[str | None, QUERY_TEXT] = Field(
        None,
        description="Part of the name, e-mail, record or account id, NIP or number"
        " (at most 50 records)",
    )


class ContactFields(Input):
    """What a customer may change on its own record."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"minProperties": 1})

    street: Annotated[str | None, SHORT] = None
    postal_code: Annotated[str | None, string(16)] = None
    city: Annotated[str | None, SHORT] = None
    email: Annotated[str | None, string(254)] = None
    phone: Annotated[str | None, string(32, type=["string", "null"])] = None
    language: Annotated[str | None, string(2)] = None

    def changes(self) -> dict[str, Any]:
        out = {n: getattr(self, n) for n in ContactFields.model_fields}
        return {n: v for n, v in out.items() if v is not None or n in self.model_fields_set}


class RecordFields(ContactFields):
    """What an operator may change (name, kind and tax ids are what verification checked)."""

    legal_name: Annotated[str | None, SHORT] = None
    kind: Annotated[str | None, choice(k.value for k in CustomerKind)] = None
    tax_id: Annotated[str | None, string(32, type=["string", "null"])] = None
    vat_id: Annotated[str | None, string(32, type=["string", "null"])] = None
    country: Annotated[str | None, string(2)] = None

    def changes(self) -> dict[str, Any]:
        names = [*RecordFields.model_fields]
        out = {n: getattr(self, n) for n in names}
        return {n: v for n, v in out.items() if v is not None or n in self.model_fields_set}


class CustomerCreate(RecordFields):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, string(64, pattern=ACCOUNT_PATTERN).required()]
    legal_name: Annotated[str, SHORT.required()]
    email: Annotated[str, string(254).required()]
    accounts: Annotated[tuple[str, ...] | None, Field(None, max_length=100)] = None


class Verify(Input):
    status: Annotated[str, choice(v.value for v in Verification).required()]
    note: Annotated[str | None, TEXT] = None


def _who(token: Token) -> str:
    return f"panel:{token.label or token.id}"


def _store(request: web.Request) -> CustomerStore:
    return CustomerStore(request.app[POOL], request.app[SERVICES].accounts)


async def _view(request: web.Request, customer: Customer) -> dict[str, Any]:
    return {**customer.as_dict(), "accounts": await accounts_of(request.app[POOL], customer.id)}


def _nothing(body: Input) -> BadRequest:
    given = sorted(body.model_fields_set | set(body.model_extra or {}))
    return BadRequest("nothing to change", {"fields": given}, code="NOTHING_TO_CHANGE")


@api.get(
    "/api/v1/customers",
    "Customer records",
    access=OPERATOR,
    ok=outputs.Customers,
    op_id="customers",
)
async def list_records(request: web.Request, query: CustomersQuery) -> web.Response:
    status = Verification(query.verification) if query.verification else None
    found = await search_customers(request.app[POOL], query.q, status)
    return web.json_response({"items": [c.as_dict() for c in found]}, dumps=_dumps)


@api.post(
    "/api/v1/customers",
    "Create a customer record (pending verification), owning the accounts given",
    access=OPERATOR,
    replies=(Reply(201, "Created", outputs.CustomerRecord),),
    errors=(409,),
)
async def create_record(request: web.Request, body: CustomerCreate) -> web.Response:
    fields = {n: v for n, v in body.changes().items() if v is not None}
    fields.update(legal_name=body.legal_name, email=body.email)
    created = await _store(request).create(
        Customer(id=body.id, **fields),
        at=datetime.now(UTC),
        actor=_who(principal(request)),
        accounts=body.accounts or (),
    )
    return web.json_response(await _view(request, created), status=201, dumps=_dumps)


@api.get(
    "/api/v1/customers/{customer}",
    "One customer record and its accounts",
    access=OPERATOR,
    ok=outputs.CustomerRecord,
    route=f"/api/v1/customers/{ID}",
)
async def get_record(request: web.Request, path: CustomerPath) -> web.Response:
    found = await get_customer(request.app[POOL], path.customer)
    return web.json_response(await _view(request, found), dumps=_dumps)


@api.patch(
    "/api/v1/customers/{customer}",
    "Change a customer record",
    access=OPERATOR,
    ok=outputs.CustomerRecord,
    route=f"/api/v1/customers/{ID}",
    errors=(409,),
)
async def update_record(
    request: web.Request, path: CustomerPath, body: RecordFields
) -> web.Response:
    changes = body.changes()
    if not changes:
        raise _nothing(body)
    updated = await _store(request).update(
        path.customer, at=datetime.now(UTC), actor=_who(principal(request)), **changes
    )
    return web.json_response(await _view(request, updated), dumps=_dumps)


@api.post(
    "/api/v1/customers/{customer}/verification",
    "Record the verification's outcome (who: the token; when: now)",
    access=OPERATOR,
    ok=outputs.CustomerRecord,
    route=f"/api/v1/customers/{ID}/verification",
    errors=(409,),
)
async def verify_record(request: web.Request, path: CustomerPath, body: Verify) -> web.Response:
    updated = await _store(request).verify(
        path.customer,
        Verification(body.status),
        at=datetime.now(UTC),
        actor=_who(principal(request)),
        note=body.note or "",
    )
    return web.json_response(await _view(request, updated), dumps=_dumps)


@api.get(
    "/api/v1/customers/{customer}/personal-data",
    "Everything held about the customer (its subject's copy)",
    access=OPERATOR,
    ok=outputs.PersonalData,
    route=f"/api/v1/customers/{ID}/personal-data",
)
async def personal_data(request: web.Request, path: CustomerPath) -> web.Response:
    exported = await export_personal_data(request.app[POOL], path.customer)
    return web.json_response(exported, dumps=_dumps)


@api.get(
    "/api/v1/accounts/{account}/customer",
    "The customer record that owns the account",
    ok=outputs.CustomerRecord,
)
async def own_record(request: web.Request, account: str) -> web.Response:
    found = await customer_of_account(request.app[POOL], account)
    if found is None:
        raise not_found("customer of account", account)
    return web.json_response(await _view(request, found), dumps=_dumps)


@api.patch(
    "/api/v1/accounts/{account}/customer",
    "Change the contact data of the account's customer record",
    ok=outputs.CustomerRecord,
    errors=(409,),
)
async def update_own_record(
    request: web.Request, account: str, body: ContactFields
) -> web.Response:
    found = await customer_of_account(request.app[POOL], account)
    if found is None:
        raise not_found("customer of account", account)
    changes = body.changes()
    if not changes:
        raise _nothing(body)
    updated = await _store(request).update(
        found.id,
        at=datetime.now(UTC),
        actor=_who(principal(request)),
        allowed=CONTACT_FIELDS,
        **changes,
    )
    return web.json_response(await _view(request, updated), dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
