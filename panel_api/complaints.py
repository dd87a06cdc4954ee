"""Complaints (billing.complaints, terms §12): a customer files and reads their own; an
operator lists them all, acknowledges and answers. The filing and answering instants are
the request's (read here, at the edge)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from billing import complaints
from billing.settings import BillingSettings
from panel_api import outputs
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api, Reply
from panel_api.inputs import MOMENT, MONEY_IN, TEXT, Checked, Input, choice, refuse, string

api = Api("complaints")
OPERATOR = Access.OPERATOR
ID = r"{complaint:[0-9]{1,18}}"
STATUSES = ("filed", "acknowledged", "accepted", "rejected", "deemed_accepted")


def _call_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise refuse("expected an array of at most 100 call identities")
    if not all(isinstance(c, str) and 0 < len(c) <= 200 for c in value):
        raise refuse("expected strings 'switch/call_id' of 1-200 characters")
    return tuple(value)


CALL_IDS = Checked(
    _call_ids,
    {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1}},
)


class ComplaintFiling(Input):
    event_at: Annotated[datetime, MOMENT.required()]
    description: Annotated[str, string(4000).required()]
    call_ids: Annotated[tuple[str, ...], CALL_IDS] = ()
    invoice: Annotated[str | None, string(64)] = None
    period: Annotated[str | None, string(7, pattern="^[0-9]{4}-[0-9]{2}$")] = None
    requested: Annotated[int, MONEY_IN] = 0


class ComplaintAnswer(Input):
    text: Annotated[str | None, TEXT] = None
    credit: Annotated[int | None, MONEY_IN] = None


class ComplaintsQuery(Input):
    status: Annotated[str | None, choice(STATUSES)] = Field(None, description="Status")


class ComplaintPath(Input):
    complaint: Annotated[
        int, Checked(int, {"type": "integer", "minimum": 0, "maximum": 10**18 - 1})
    ]


class AccountComplaintPath(ComplaintPath):
    account: Annotated[str, string(64)]


@api.get(
    "/api/v1/accounts/{account}/complaints",
    "An account's complaints",
    ok=outputs.Complaints,
    op_id="account_complaints",
)
async def list_account_complaints(request: web.Request, account: str) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await complaints.list_complaints(conn, account)
    return web.json_response({"items": [c.as_dict() for c in found]})


@api.post(
    "/api/v1/accounts/{account}/complaints",
    "File a complaint about calls, an invoice or a period (up to 12 months after the event)",
    replies=(Reply(201, "Filed", outputs.Complaint),),
    op_id="file_complaint",
)
async def file_complaint(request: web.Request, account: str, body: ComplaintFiling) -> web.Response:
    filing = complaints.Filing(
        account,
        body.event_at,
        body.description,
        body.call_ids,
        body.invoice,
        body.period,
        body.requested,
    )
    async with request.app[POOL].acquire() as conn:
        c = await complaints.file(
            conn, filing, complaints.answer_days_from_env(), datetime.now(UTC)
        )
    return web.json_response(c.as_dict(), status=201)


@api.get(
    "/api/v1/accounts/{account}/complaints/{complaint}",
    "One of the account's complaints",
    ok=outputs.Complaint,
    route=f"/api/v1/accounts/{{account}}/complaints/{ID}",
    op_id="account_complaint",
)
async def get_account_complaint(
    request: web.Request, account: str, path: AccountComplaintPath
) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        c = await complaints.get(conn, path.complaint, account)
    return web.json_response(c.as_dict())


@api.get(
    "/api/v1/complaints",
    "Every account's complaints",
    access=OPERATOR,
    ok=outputs.Complaints,
    op_id="complaints",
)
async def list_complaints(request: web.Request, query: ComplaintsQuery) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await complaints.list_complaints(conn, None, query.status)
    return web.json_response({"items": [c.as_dict() for c in found]})


@api.post(
    "/api/v1/complaints/{complaint}/{action}",
    "Acknowledge or answer a complaint",
    access=OPERATOR,
    ok=outputs.Complaint,
    errors=(409,),
    route=f"/api/v1/complaints/{ID}/{{action}}",
    body_required=False,
    actions={
        "acknowledge": "Acknowledge receipt",
        "accept": "Accept, with the reasons; credits `credit` (default: what was asked)",
        "reject": "Reject, with the reasons; the customer may appeal within 14 days",
    },
    op_id="answer_complaint",
)
async def answer_complaint(
    request: web.Request, path: ComplaintPath, body: ComplaintAnswer
) -> web.Response:
    action = request.match_info["action"]
    now = datetime.now(UTC)
    async with request.app[POOL].acquire() as conn:
        if action == "acknowledge":
            await complaints.get(conn, path.complaint)
            c = await complaints.acknowledge(conn, path.complaint, now)
        else:
            c = await complaints.answer(
                request.app[SERVICES].accounts,
                conn,
                BillingSettings.from_env(),
                path.complaint,
                action == "accept",
                body.text or "",
                now,
                body.credit,
            )
    return web.json_response(c.as_dict())
