"""Operators review abuse findings (abuse): list, look at one, acknowledge, lift (which
resumes an account this finding alone held suspended) or close."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from abuse import findings
from abuse.detectors import DETECTORS
from abuse.findings import Status
from panel_api.auth import operator
from panel_api.context import POOL, SERVICES
from panel_api.params import choice, field, integer, json_object, text_query
from panel_api.tokens import Token

routes = web.RouteTableDef()
ID = r"{finding:[0-9]{1,18}}"


def _who(token: Token) -> str:
    return f"panel:{token.label or token.id}"


@routes.get("/api/v1/findings")
async def list_findings(request: web.Request) -> web.Response:
    operator(request)
    status = choice(request.query, "status", [s.value for s in Status])
    found = await findings.list_findings(
        request.app[POOL],
        account=text_query(request.query, "account"),
        status=Status(status) if status else None,
        rule=choice(request.query, "rule", DETECTORS),
        limit=integer(request.query, "limit", 100, 1, 1000),
    )
    return web.json_response({"items": [f.as_dict() for f in found]})


@routes.get(f"/api/v1/findings/{ID}")
async def get_finding(request: web.Request) -> web.Response:
    operator(request)
    finding = await findings.get(request.app[POOL], int(request.match_info["finding"]))
    return web.json_response(finding.as_dict())


@routes.post(f"/api/v1/findings/{ID}/{{action:acknowledge|lift|close}}")
async def change_finding(request: web.Request) -> web.Response:
    who = _who(operator(request))
    why = field(await json_object(request), "reason", str) or ""
    pool, finding_id = request.app[POOL], int(request.match_info["finding"])
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
