"""Operators: the calls the ledger holds open, and hanging one up through Asterisk (ARI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from panel_api import outputs
from panel_api.context import ARI, SERVICES
from panel_api.endpoint import Access, Api
from panel_api.errors import BadGateway, Conflict, not_found
from panel_api.inputs import QUERY_TEXT, Input
from rating.money import format_micro
from switch.ari import AriError

api = Api("operator")


class CallsQuery(Input):
    account: Annotated[str | None, QUERY_TEXT] = Field(None, description="Only this account's")


class HangupQuery(Input):
    account: Annotated[str | None, QUERY_TEXT] = Field(
        None, description="Whose call, when accounts share its id"
    )


class CallPath(Input):
    call_id: str


def _iso(ms: str | None) -> str | None:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat() if ms else None


def call_view(record: dict[str, str]) -> dict[str, Any]:
    return {
        "call_id": record.get("call_id", ""),
        "switch": record.get("switch", ""),
        "account": record.get("account", ""),
        "number": record.get("e164", ""),
        "class": record.get("class", ""),
        "control": record.get("control") or "dial",
        "granted_s": int(record.get("granted") or 0),
        "reserved": format_micro(int(record.get("reserved") or 0)),
        "authorized_at": _iso(record.get("authorized_at")),
        "answered_at": _iso(record.get("answered_at")),
    }


@api.get(
    "/api/v1/calls",
    "Calls the ledger holds open",
    access=Access.OPERATOR,
    ok=outputs.RunningCalls,
)
async def running_calls(request: web.Request, query: CallsQuery) -> web.Response:
    account = query.account
    calls = [
        call_view(r)
        for r in await request.app[SERVICES].ledger.open_sessions()
        if not account or r.get("account") == account
    ]
    calls.sort(key=lambda c: (str(c["authorized_at"]), c["call_id"]))
    return web.json_response({"items": calls})


@api.post(
    "/api/v1/calls/{call_id}/hangup",
    "Hang up a running call through Asterisk's ARI (409 when ARI is not configured)",
    access=Access.OPERATOR,
    ok=outputs.HungUp,
    errors=(409, 502),
)
async def hangup(request: web.Request, path: CallPath, query: HangupQuery) -> web.Response:
    call_id = path.call_id
    ari = request.app.get(ARI)
    if ari is None:
        raise Conflict(
            "hanging up needs Asterisk's ARI: TOLLGATE_ARI_URL is not set for the panel",
            {"setting": "TOLLGATE_ARI_URL"},
            code="ARI_NOT_CONFIGURED",
        )
    # the panel's ARI is one switch's Asterisk: only that switch's calls are reachable
    found = await request.app[SERVICES].ledger.running(call_id, account=query.account or "")
    if not found:
        raise not_found("running call", call_id)
    if len(found) > 1:
        accounts = sorted(r.get("account", "") for r in found)
        raise Conflict(
            f"call {call_id!r} is running for several accounts: give ?account=",
            {"accounts": accounts},
            code="AMBIGUOUS_CALL_ID",
        )
    record = found[0]
    try:
        done = await ari.hangup(record.get("a_chan") or call_id)
    except AriError as exc:
        raise BadGateway(f"Asterisk refused: {exc}", {"status": exc.status}) from None
    if not done:
        raise not_found("running call", call_id)  # it ended meanwhile
    return web.json_response({"call_id": call_id, "hung_up": True})
