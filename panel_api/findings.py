"""Operators review abuse findings (abuse): list, look at one, acknowledge, lift (which
resumes an account this finding alone held suspended) or close."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from abuse import findings
from abuse.detectors import DETECTORS
from abuse.findings import Status
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, SERVICES
from panel_api.endpoint import Access, Api
from panel_api.inputs import QUERY_TEXT, Checked, Input, StatusChange, choice, whole
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
    )
    return web.json_response({"items": [f.as_dict() for f in found]})


@api.get(
    "/api/v1/findings/{finding}",
    "One abuse finding with its evidence",
    access=OPERATOR,
    ok=outputs.Finding,
    route=f"/api/v1/findings/{ID}",
    op_id="finding",
)
async def get_finding(request: web.Request, path: FindingPath) -> web.Response:
    finding = await findings.get(request.app[POOL], path.finding)
    return web.json_response(finding.as_dict())


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
        " held it suspended",
        "close": "Close: done with it (a suspension stays)",
    },
    op_id="finding",
)
async def change_finding(
    request: web.Request, path: FindingPath, body: StatusChange
) -> web.Response:
    who = _who(principal(request))
    why = body.reason or ""
    pool, finding_id = request.app[POOL], path.finding
    action = request.match_info["action"]
    out: dict[str, Any]
    if action == "lift":
        finding, resumed = await findings.lift(
            pool, request.app[SERVICES].accounts, finding_id, who, why
        )
        out = {**finding.as_dict(), "account_resumed": resumed}
    elif action == "acknowledge":
        out = (await findings.acknowledge(pool, finding_id, who, why)).as_dict()
    else:
        out = (await findings.close(pool, finding_id, who, why)).as_dict()
    return web.json_response(out)
