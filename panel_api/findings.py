"""Operators review abuse findings (abuse): list, look at one with its timeline,
acknowledge, lift (which resumes an account this finding alone held suspended), close, and
accept or reject a closure proposed on a repeat. A customer reads their own account's
findings: the rule, the warning's deadline and the timeline, without operators' notes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from abuse import findings, warnings
from abuse.detectors import DETECTORS
from abuse.findings import Status
from abuse.settings import Action
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api
from panel_api.errors import BadRequest
from panel_api.inputs import QUERY_TEXT, Checked, FindingChange, Input, choice, whole
from panel_api.tokens import Token

api = Api("operator")
OPERATOR = Access.OPERATOR
ID = r"{finding:[0-9]{1,18}}"


class FindingsQuery(Input):
    status: Annotated[str | None, choice(s.value for s in Status)] = Field(
        None, description="Status"
    )
    account: Annotated[str | None, QUERY_TEXT] = Field(None, description="Only this account's")
    rule: Annotated[str | None, choice(DETECTORS)] = Field(None, description="Rule")
    limit: Annotated[int, whole(1, 1000)] = Field(100, description="At most")
    closure: Annotated[str | None, choice(("proposed", "accepted", "rejected"))] = Field(
        None, description="Only findings whose account closure is ..."
    )


class FindingPath(Input):
    # the route lets only 1-18 digits through
    finding: Annotated[int, Checked(int, {"type": "integer", "minimum": 0, "maximum": 10**18 - 1})]


def _who(token: Token) -> str:
    return f"panel:{token.label or token.id}"


@api.get(
    "/api/v1/findings",
    "Abuse findings, newest first",
    access=OPERATOR,
    ok=outputs.Findings,
    op_id="findings",
)
async def list_findings(request: web.Request, query: FindingsQuery) -> web.Response:
    found = await findings.list_findings(
        request.app[POOL],
        account=query.account,
        status=Status(query.status) if query.status else None,
        rule=query.rule,
        limit=query.limit,
        closure=query.closure,
    )
    return web.json_response({"items": [f.as_dict() for f in found]})


@api.get(
    "/api/v1/accounts/{account}/findings",
    "The account's abuse findings with their timelines (warned, deadline, suspended, lifted,"
    " closed)",
    ok=outputs.CustomerFindings,
    op_id="account_findings",
)
async def list_account_findings(request: web.Request, account: str) -> web.Response:
    pool = request.app[POOL]
    found = await findings.list_findings(pool, account=account, limit=1000)
    items = []
    async with pool.acquire() as conn:
        for f in found:
            if f.action.rank < Action.WARN.rank:
                continue  # recorded or alerted only: nothing was done to the customer
            items.append(findings.customer_view(f, await findings.timeline(conn, f.id)))
    return web.json_response({"items": items})


@api.get(
    "/api/v1/findings/{finding}",
    "One abuse finding with its evidence and timeline",
    access=OPERATOR,
    ok=outputs.Finding,
    route=f"/api/v1/findings/{ID}",
    op_id="finding",
)
async def get_finding(request: web.Request, path: FindingPath) -> web.Response:
    pool = request.app[POOL]
    finding = await findings.get(pool, path.finding)
    async with pool.acquire() as conn:
        events = await findings.timeline(conn, finding.id)
    return web.json_response({**finding.as_dict(), "timeline": [e.as_dict() for e in events]})


@api.post(
    "/api/v1/findings/{finding}/{action}",
    "Change a finding's status",
    access=OPERATOR,
    ok=outputs.Finding,
    errors=(409,),
    route=f"/api/v1/findings/{ID}/{{action}}",
    body_required=False,
    actions={
        "acknowledge": "Acknowledge: someone is looking into it",
        "lift": "Lift: a false alarm or dealt with; resumes the account if this finding alone"
        " held it suspended; `false_alarm`: it was not abuse, so it is no earlier episode for"
        " the repeat rule",
        "close": "Close: done with it (a suspension stays)",
        "accept-closure": "Accept the account closure proposed on a repeat: the account is"
        " closed",
        "reject-closure": "Reject the account closure proposed on a repeat",
    },
    op_id="finding",
)
async def change_finding(
    request: web.Request, path: FindingPath, body: FindingChange
) -> web.Response:
    who = _who(principal(request))
    why = body.reason or ""
    pool, finding_id = request.app[POOL], path.finding
    action = request.match_info["action"]
    if body.false_alarm and action != "lift":
        raise BadRequest(
            "false_alarm: only a lift can call a finding a false alarm",
            {"field": "false_alarm", "why": "only with lift"},
        )
    out: dict[str, Any]
    if action == "lift":
        finding, resumed = await findings.lift(
            pool, request.app[SERVICES].accounts, finding_id, who, why, body.false_alarm
        )
        out = {**finding.as_dict(), "account_resumed": resumed}
    elif action in ("accept-closure", "reject-closure"):
        accept = action == "accept-closure"
        now = datetime.now(UTC)  # the edge reads the clock
        accounts = request.app[SERVICES].accounts
        out = (
            await warnings.decide_closure(pool, accounts, finding_id, accept, who, why, now)
        ).as_dict()
    elif action == "acknowledge":
        out = (await findings.acknowledge(pool, finding_id, who, why)).as_dict()
    else:
        out = (await findings.close(pool, finding_id, who, why)).as_dict()
    return web.json_response(out)
