"""Operators keep the plans (minute bundles for a fee per month) and put accounts on them
(the same store and checks as `tollgate plan ...`; every request is in the audit log). An
account's own view shows its plans and this month's bundle usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import SERVICES
from panel_api.endpoint import Access, Api
from panel_api.errors import BadRequest
from panel_api.inputs import MOMENT, MONEY_IN, Checked, Input, refuse, string
from rating.money import format_micro
from rating.plan_store import PlanStore
from rating.plans import PLAN_NAME, Allowance, Plan

api = Api("plans")
OPERATOR = Access.OPERATOR
NAME_PATTERN = PLAN_NAME.pattern
ROUTE = r"/api/v1/plans/{plan:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}}"
ALLOWANCE_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["seconds"],
        "properties": {
            "seconds": {"type": "integer", "minimum": 1},
            "classes": {"type": "array", "items": {"type": "string"}},
            "prefixes": {"type": "array", "items": {"type": "string"}},
            "label": {"type": "string"},
        },
    },
}


def _allowances(value: Any) -> tuple[Allowance, ...]:
    """Shapes only: the plan's own checks name the offending allowance and field."""
    if not isinstance(value, list):
        raise refuse("expected an array of allowances")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise refuse(f"[{i}]: expected an object")
        seconds, label = item.get("seconds"), item.get("label", "")
        lists = [item.get(k, []) for k in ("classes", "prefixes")]
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise refuse(f"[{i}].seconds: expected integer")
        if not isinstance(label, str):
            raise refuse(f"[{i}].label: expected string")
        if not all(isinstance(x, list) and all(isinstance(s, str) for s in x) for x in lists):
            raise refuse(f"[{i}]: classes and prefixes are arrays of strings")
        prefixes = tuple(p.lstrip("+") for p in lists[1])
        out.append(Allowance(seconds, tuple(lists[0]), prefixes, label))
    return tuple(out)


ALLOWANCES = Checked(_allowances, ALLOWANCE_SCHEMA)


class PlanPath(Input):
    plan: Annotated[str, string(64, pattern=NAME_PATTERN).required()]


class PlanChange(Input):
    fee: Annotated[int | None, MONEY_IN] = Field(None, description="Net fee per month")
    allowances: Annotated[tuple[Allowance, ...] | None, ALLOWANCES] = None


class PlanCreate(PlanChange):
    name: Annotated[str, string(64, pattern=NAME_PATTERN).required()]
    currency: Annotated[str | None, string(3)] = None


class Assign(Input):
    plan: Annotated[str, string(64, pattern=NAME_PATTERN).required()]
    start: Annotated[datetime, MOMENT.required()]


class Unassign(Input):
    end: Annotated[datetime, MOMENT.required()]


def _store(request: web.Request) -> PlanStore:
    return PlanStore(request.app[SERVICES].accounts)


def _who(request: web.Request) -> str:
    token = principal(request)
    return f"panel:{token.label or token.id}"


def _shown(plan: Plan) -> dict[str, Any]:
    return {**plan.as_dict(), "fee": format_micro(plan.fee)}


@api.get("/api/v1/plans", "Every plan", access=OPERATOR, ok=outputs.Plans)
async def plans(request: web.Request) -> web.Response:
    return web.json_response({"items": [_shown(p) for p in await _store(request).all()]})


@api.post(
    "/api/v1/plans",
    "Add a plan: a fee per month and allowances of free seconds",
    access=OPERATOR,
    ok=outputs.Plan,
    errors=(409,),
)
async def create_plan(request: web.Request, body: PlanCreate) -> web.Response:
    if body.fee is None:
        raise BadRequest("fee: required", {"field": "fee", "why": "required"},
                         code="INVALID_FIELD")  # fmt: skip
    plan = Plan(body.name, body.fee, body.currency or "PLN", body.allowances or ())
    made = await _store(request).create(plan, at=datetime.now(UTC), actor=_who(request))
    return web.json_response(_shown(made), status=201)


@api.get("/api/v1/plans/{plan}", "One plan and its history", access=OPERATOR,
         ok=outputs.PlanWithHistory, route=ROUTE)  # fmt: skip
async def get_plan(request: web.Request, path: PlanPath) -> web.Response:
    store = _store(request)
    found = await store.get(path.plan)
    return web.json_response({**_shown(found), "history": await store.history(path.plan)})


@api.patch(
    "/api/v1/plans/{plan}",
    "Change a plan's fee or allowances (accounts on it get the new allowances at once)",
    access=OPERATOR,
    ok=outputs.Plan,
    route=ROUTE,
)
async def update_plan(request: web.Request, path: PlanPath, body: PlanChange) -> web.Response:
    changes = {k: v for k in ("fee", "allowances") if (v := getattr(body, k)) is not None}
    if not changes:
        raise BadRequest("nothing to change", {"fields": ["allowances", "fee"]},
                         code="NOTHING_TO_CHANGE")  # fmt: skip
    done = await _store(request).update(path.plan, changes, at=datetime.now(UTC),
                                        actor=_who(request))  # fmt: skip
    return web.json_response(_shown(done))


@api.post("/api/v1/plans/{plan}/disable", "No new assignments of a plan", access=OPERATOR,
          ok=outputs.Plan, route=f"{ROUTE}/disable")  # fmt: skip
async def disable_plan(request: web.Request, path: PlanPath) -> web.Response:
    done = await _store(request).disable(path.plan, at=datetime.now(UTC), actor=_who(request))
    return web.json_response(_shown(done))


@api.get(
    "/api/v1/accounts/{account}/plan",
    "An account's plans and this month's bundle usage",
    ok=outputs.AccountPlan,
    op_id="account_plan",
)
async def account_plan(request: web.Request, account: str) -> web.Response:
    store = _store(request)
    return web.json_response({
        "account": account,
        "plans": [a.as_dict() for a in await store.assignments(account)],
        "bundles": await store.usage(account, datetime.now(UTC)),
    })  # fmt: skip


@api.post(
    "/api/v1/accounts/{account}/plan",
    "Put an account on a plan from an instant (one plan at a time)",
    access=OPERATOR,
    ok=outputs.PlanAssignment,
    errors=(409,),
    op_id="assign_plan",
)
async def assign_plan(request: web.Request, account: str, body: Assign) -> web.Response:
    made = await _store(request).assign(account, body.plan, body.start, at=datetime.now(UTC),
                                        actor=_who(request))  # fmt: skip
    return web.json_response(made.as_dict())


@api.post(
    "/api/v1/accounts/{account}/plan/end",
    "End an account's plan at an instant",
    access=OPERATOR,
    ok=outputs.PlanAssignment,
    op_id="unassign_plan",
)
async def unassign_plan(request: web.Request, account: str, body: Unassign) -> web.Response:
    done = await _store(request).unassign(account, body.end, at=datetime.now(UTC),
                                          actor=_who(request))  # fmt: skip
    return web.json_response(done.as_dict())
