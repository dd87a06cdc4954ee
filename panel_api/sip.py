"""SIP logins (customers.sip): operators create, re-key, disable, enable and delete them;
a customer sees their own account's logins and registrations, never a password. A password
is in the answer of the request that set it, and nowhere after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web

from customers import sip
from customers.sip_settings import SipSettings
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api, Reply
from panel_api.inputs import Checked, Input, StatusChange, refuse, string

api = Api("sip")
OPERATOR = Access.OPERATOR
LOGIN = r"{login:[0-9]{4,15}}"
STATUS = {"disable": "disabled", "enable": "active"}


def _contacts(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise refuse("expected an integer between 1 and 100")
    return value


class SipLoginCreate(Input):
    login: Annotated[str | None, string(15, pattern=sip.LOGIN_RE.pattern)] = None
    max_contacts: Annotated[
        int | None, Checked(_contacts, {"type": "integer", "minimum": 1, "maximum": 100})
    ] = None


class LoginPath(Input):
    # the route lets only 4-15 digits through
    login: Annotated[str, Checked(str, {"type": "string", "pattern": sip.LOGIN_RE.pattern})]


def _settings() -> SipSettings:
    return SipSettings.from_env()


@api.get(
    "/api/v1/accounts/{account}/sip-logins",
    "An account's SIP logins and their registrations (never passwords)",
    ok=outputs.SipLogins,
    op_id="sip_logins",
)
async def list_sip_logins(request: web.Request, account: str) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await sip.list_logins(conn, datetime.now(UTC), account)
    return web.json_response({"items": [x.as_dict() for x in found]})


@api.post(
    "/api/v1/accounts/{account}/sip-logins",
    "Create a SIP login (a 7-digit one unless given); the password is in this answer only",
    access=OPERATOR,
    replies=(Reply(201, "Created", outputs.SipCredentials),),
    errors=(409,),
    op_id="create_sip_login",
)
async def create_sip_login(
    request: web.Request, account: str, body: SipLoginCreate
) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        creds = await sip.create(conn, _settings(), account, body.login, body.max_contacts or 1)
    await sip.publish(request.app[SERVICES].accounts, account)
    return web.json_response(creds.as_dict(), status=201)


@api.get(
    "/api/v1/sip-logins/{login}",
    "One SIP login and its registrations",
    access=OPERATOR,
    ok=outputs.SipLogin,
    route=f"/api/v1/sip-logins/{LOGIN}",
    op_id="sip_login",
)
async def get_sip_login(request: web.Request, path: LoginPath) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await sip.get(conn, path.login, datetime.now(UTC))
    return web.json_response(found.as_dict())


@api.post(
    "/api/v1/sip-logins/{login}/password",
    "A new generated password (in this answer only); registered phones are dropped",
    access=OPERATOR,
    ok=outputs.SipCredentials,
    route=f"/api/v1/sip-logins/{LOGIN}/password",
    body_required=False,
    op_id="sip_login_password",
)
async def new_sip_password(request: web.Request, path: LoginPath) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        creds = await sip.set_password(conn, _settings(), path.login)
    return web.json_response(creds.as_dict())


@api.post(
    "/api/v1/sip-logins/{login}/{action}",
    "Disable or enable a SIP login (Asterisk refuses or accepts it at its next request)",
    access=OPERATOR,
    ok=outputs.SipLogin,
    route=f"/api/v1/sip-logins/{LOGIN}/{{action}}",
    body_required=False,
    actions={
        "disable": "Refuse the login from its next REGISTER or INVITE; drop its registrations",
        "enable": "Accept the login again (after disable or a security lockout)",
    },
    op_id="sip_login_status",
)
async def set_sip_status(request: web.Request, path: LoginPath, body: StatusChange) -> web.Response:
    who = principal(request)
    status = STATUS[request.match_info["action"]]
    reason = f"{body.reason or ''} (by {who.label or who.id})".strip() if status != "active" else ""
    async with request.app[POOL].acquire() as conn:
        changed = await sip.set_status(conn, _settings(), path.login, status, reason)
    await sip.publish(request.app[SERVICES].accounts, changed.account)
    return web.json_response(changed.as_dict())


@api.delete(
    "/api/v1/sip-logins/{login}",
    "Delete a SIP login",
    access=OPERATOR,
    replies=(Reply(204, "Deleted"),),
    route=f"/api/v1/sip-logins/{LOGIN}",
    op_id="delete_sip_login",
)
async def delete_sip_login(request: web.Request, path: LoginPath) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        account = await sip.delete(conn, path.login)
    await sip.publish(request.app[SERVICES].accounts, account)
    return web.Response(status=204)
