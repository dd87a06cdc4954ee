"""Operators keep the carriers: their buy-rate deck, trunk, priority and capacity (the same
store and checks as `tollgate carrier ...`; every request is in the audit log)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import Field

from billing.period import Period
from billing.report_period import report_bounds
from billing.settings import BillingSettings
from cdr.margin import margin_report
from panel_api import outputs
from panel_api.auth import principal
from panel_api.context import POOL, REDIS, SETTINGS
from panel_api.documents import BILLING
from panel_api.endpoint import Access, Api
from panel_api.errors import BadRequest
from panel_api.inputs import (
    ACCOUNT_PATTERN,
    COUNT,
    FLAG,
    MOMENT,
    PERIOD_PATTERN,
    Checked,
    Input,
    refuse,
    string,
    text,
    whole,
)
from rating.carrier_store import CarrierStore, carrier_history, get_carrier, list_carriers
from rating.carriers import TRUNK, Carrier
from rating.codes import DECK_NAME

api = Api("carriers")
OPERATOR = Access.OPERATOR
NAME_PATTERN = f"^{DECK_NAME.pattern}$"
ROUTE = r"/api/v1/carriers/{carrier:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}}"


class CarrierPath(Input):
    carrier: Annotated[str, string(64, pattern=NAME_PATTERN).required()]


class CarrierFields(Input):
    deck: Annotated[str | None, string(64, pattern=NAME_PATTERN)] = None
    trunk: Annotated[str | None, string(64, pattern=f"^({TRUNK.pattern})?$")] = None
    priority: Annotated[int | None, COUNT] = None
    max_calls: Annotated[int | None, COUNT] = None
    cps: Annotated[int | None, COUNT] = None
    disabled: Annotated[bool | None, FLAG] = None
    csv_columns: Annotated[str | None, string(400)] = Field(
        None, description="its CDR file's columns: number=C,start=C,seconds=C,cost=C"
    )

    def changes(self) -> dict[str, Any]:
        return {n: v for n in CarrierFields.model_fields if (v := getattr(self, n)) is not None}


class CarrierCreate(CarrierFields):
    name: Annotated[str, string(64, pattern=NAME_PATTERN).required()]


def _period(value: object) -> Period:
    if not re.fullmatch(PERIOD_PATTERN, text(value)):
        raise refuse("a month, YYYY-MM")
    return Period.parse(str(value))


def _zone(value: object) -> str:
    try:
        ZoneInfo(text(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise refuse("an IANA time zone, e.g. Europe/Warsaw") from None
    return str(value)


class MarginQuery(Input):
    period: Annotated[
        Period, Checked(_period, {"type": "string", "pattern": PERIOD_PATTERN}).required()
    ]
    tz: Annotated[str | None, Checked(_zone, {"type": "string"})] = Field(
        None, description="Zone of the month (default: the billing zone)"
    )

    def bounds(self, billing: BillingSettings) -> tuple[datetime, datetime]:
        return report_bounds(self.period, self.tz, billing)


def _store(request: web.Request) -> CarrierStore:
    return CarrierStore(request.app[POOL], request.app[REDIS], request.app[SETTINGS].keyspace)


def _who(request: web.Request) -> str:
    token = principal(request)
    return f"panel:{token.label or token.id}"


@api.get("/api/v1/carriers", "Every carrier", access=OPERATOR, ok=outputs.Carriers)
async def carriers(request: web.Request) -> web.Response:
    found = await list_carriers(request.app[POOL])
    return web.json_response({"items": [c.as_dict() for c in found]})


@api.post(
    "/api/v1/carriers",
    "Add a carrier priced by a buy-rate deck (imported already)",
    access=OPERATOR,
    ok=outputs.Carrier,
    errors=(409,),
)
async def create_carrier(request: web.Request, body: CarrierCreate) -> web.Response:
    fields = body.changes()
    if not fields.get("deck"):
        raise BadRequest("deck: required", {"field": "deck", "why": "required"},
                         code="INVALID_FIELD")  # fmt: skip
    made = await _store(request).create(
        Carrier(body.name, **fields), at=datetime.now(UTC), actor=_who(request)
    )
    return web.json_response(made.as_dict(), status=201)


@api.get(
    "/api/v1/carriers/{carrier}",
    "One carrier and its history",
    access=OPERATOR,
    ok=outputs.CarrierWithHistory,
    route=ROUTE,
)
async def get_one(request: web.Request, path: CarrierPath) -> web.Response:
    pool = request.app[POOL]
    found = await get_carrier(pool, path.carrier)
    history = await carrier_history(pool, path.carrier)
    return web.json_response({**found.as_dict(), "history": history})


@api.patch(
    "/api/v1/carriers/{carrier}",
    "Change a carrier (deck, trunk, priority, capacity; disabled: stop routing to it)",
    access=OPERATOR,
    ok=outputs.Carrier,
    route=ROUTE,
)
async def update_carrier(
    request: web.Request, path: CarrierPath, body: CarrierFields
) -> web.Response:
    changes = body.changes()
    if not changes:
        raise BadRequest("nothing to change", {"fields": sorted(CarrierFields.model_fields)},
                         code="NOTHING_TO_CHANGE")  # fmt: skip
    done = await _store(request).update(
        path.carrier, changes, at=datetime.now(UTC), actor=_who(request)
    )
    return web.json_response(done.as_dict())


@api.get(
    "/api/v1/reports/margin",
    "Sell, buy and margin of routed calls of a month per carrier, destination and account",
    access=OPERATOR,
    ok=outputs.MarginReport,
)
async def margin(request: web.Request, query: MarginQuery) -> web.Response:
    start, end = query.bounds(request.app[BILLING])
    async with request.app[POOL].acquire() as conn:
        found = await margin_report(conn, start, end)
    return web.json_response({"period": str(query.period), **found})


@api.get(
    "/api/v1/reports/carriers",
    "Carriers' quality over a month: attempts, answered, ASR, ACD and failure codes",
    access=OPERATOR,
    ok=outputs.CarrierQualityReport,
)
async def quality(request: web.Request, query: MarginQuery) -> web.Response:
    from cdr.carrier_quality import carrier_quality

    start, end = query.bounds(request.app[BILLING])
    async with request.app[POOL].acquire() as conn:
        found = await carrier_quality(conn, start, end)
    return web.json_response({"period": str(query.period), "from": start.isoformat(),
                              "to": end.isoformat(), "carriers": found})  # fmt: skip


class RoutesQuery(Input):
    account: Annotated[str, string(64, pattern=ACCOUNT_PATTERN).required()]
    to: Annotated[str, string(40).required()] = Field(
        description="The number as dialled ('+' and separators allowed)"
    )
    at: Annotated[datetime | None, MOMENT] = Field(
        None, description="The call's start (default: now)"
    )
    seconds: Annotated[int | None, whole(1, 86_400)] = Field(
        None, description="Duration priced and checked (default 60)"
    )


@api.get(
    "/api/v1/routes",
    "The carriers a call would try, cheapest first, as the authorization computes them",
    access=OPERATOR,
    ok=outputs.RoutePlan,
)
async def routes(request: web.Request, query: RoutesQuery) -> web.Response:
    from rating.route_preview import RoutePreviewError, preview

    settings = request.app[SETTINGS]
    try:
        plan = await preview(
            request.app[POOL], request.app[REDIS], settings.keyspace, query.account, query.to,
            query.at or datetime.now(UTC), query.seconds or 60,
        )  # fmt: skip
    except RoutePreviewError as exc:
        raise BadRequest(str(exc), {"field": exc.field, "why": exc.why},
                         code="INVALID_FIELD") from None  # fmt: skip
    return web.json_response(plan)


class FxCreate(Input):
    base: Annotated[str, string(3, pattern="^[A-Z]{3}$").required()]
    quote: Annotated[str, string(3, pattern="^[A-Z]{3}$").required()]
    rate: Annotated[str, string(24, pattern=r"^[0-9]+([.,][0-9]+)?$").required()] = Field(
        description="1 base = rate quote, an exact decimal (at most 12 decimals)"
    )
    effective_at: Annotated[datetime, MOMENT.required()]


@api.get("/api/v1/fx", "Exchange rates for buy decks in other currencies", access=OPERATOR,
         ok=outputs.FxRates)  # fmt: skip
async def fx_rates(request: web.Request) -> web.Response:
    from rating.fx_store import list_fx

    found = await list_fx(request.app[POOL])
    return web.json_response({"items": [r.as_dict() for r in found]})


@api.post(
    "/api/v1/fx",
    "Set an exchange rate from an instant on (the same instant again replaces it)",
    access=OPERATOR,
    ok=outputs.FxRate,
)
async def set_fx_rate(request: web.Request, body: FxCreate) -> web.Response:
    from rating.fx import FxError, FxRate
    from rating.fx_store import set_fx

    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            done, previous = await set_fx(
                conn, FxRate(body.base, body.quote, body.rate, body.effective_at),
                at=datetime.now(UTC), actor=_who(request),
            )  # fmt: skip
    except FxError as exc:
        raise BadRequest(str(exc), {"field": exc.field, "why": exc.why},
                         code="INVALID_FIELD") from None  # fmt: skip
    await _store(request).mirror()
    return web.json_response({**done.as_dict(), "replaced": previous}, status=201)
