"""The panel's aiohttp application: routes, middlewares and resources in one place."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from billing.gateway import GatewaySettings
from billing.pdf import PdfSettings
from billing.settings import BillingSettings
from panel_api import (
    account_import,
    audit,
    calls,
    carriers,
    complaints,
    customer,
    customer_records,
    decks,
    documents,
    findings,
    numbers,
    operator,
    page,
    payments,
    plans,
    reset_api,
    session,
    sip,
)
from panel_api.auth import auth_middleware
from panel_api.context import (
    ARI_SETTINGS,
    PANEL,
    POOL,
    REDIS,
    SETTINGS,
    ari_ctx,
    last_used_ctx,
    metrics_listener_ctx,
    pool_ctx,
    redis_ctx,
    services_ctx,
)
from panel_api.endpoint import Access, Api, Endpoint
from panel_api.errors import error_middleware
from panel_api.http_log import quiet_malformed_requests
from panel_api.metrics import METRICS, PanelMetrics, metrics_middleware
from panel_api.openapi import spec
from panel_api.outputs import Health
from panel_api.server import body_deadline_middleware
from panel_api.settings import PanelSettings
from runtime.settings import Settings
from switch.ari import AriSettings

log = logging.getLogger("tollgate.panel")
service = Api("service")
APIS = (
    service,
    session.api,
    reset_api.api,
    customer.api,
    documents.api,
    operator.api,
    decks.api,
    account_import.api,
    findings.api,
    calls.api,
    customer_records.api,
    numbers.api,
    carriers.api,
    plans.api,
    sip.api,
    payments.api,
    audit.api,
    complaints.api,
)


def endpoints() -> list[Endpoint]:
    return [e for api in APIS for e in api.endpoints]


def document() -> dict[str, Any]:
    """The OpenAPI document, from the endpoints' declarations."""
    return spec(endpoints())


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(), dumps=_dumps)


@service.get(
    "/health",
    "Redis and PostgreSQL answer",
    access=Access.PUBLIC,
    ok=Health,
    errors=(503,),
)
async def health(request: web.Request) -> web.Response:
    """A status only: why a service failed goes to the log, not to whoever asks."""
    try:
        await request.app[REDIS].ping()
        await request.app[POOL].fetchval("select 1")
    except (
        RedisError,
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        log.warning("health check failed: %r", exc)
        return web.json_response(
            {"status": "unavailable"}, status=503, headers={"Retry-After": "1"}
        )
    return web.json_response({"status": "ok"})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1)


def build_app(
    settings: Settings,
    panel: PanelSettings | None = None,
    *,
    ari: AriSettings | None = None,
    registry: CollectorRegistry | None = None,
    billing: BillingSettings | None = None,
) -> web.Application:
    panel = panel or PanelSettings()
    quiet_malformed_requests()
    # outermost first: metrics see the status the error middleware chose
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            body_deadline_middleware,
            auth_middleware,
            audit.audit_middleware,
        ],
        client_max_size=panel.max_upload_bytes,
    )
    app[SETTINGS] = settings
    app[PANEL] = panel
    app[ARI_SETTINGS] = ari if ari is not None else AriSettings.from_env()
    app[METRICS] = PanelMetrics(registry)
    app[documents.BILLING] = billing if billing is not None else BillingSettings.from_env()
    app[documents.PDF_SETTINGS] = PdfSettings.from_env()
    app[payments.GATEWAY] = GatewaySettings.from_env()
    app.cleanup_ctx.extend(
        [redis_ctx, pool_ctx, services_ctx, ari_ctx, last_used_ctx, metrics_listener_ctx]
    )
    app.router.add_get("/openapi.json", openapi, name="public:openapi")
    app.router.add_routes(page.routes)
    for api in APIS:
        app.router.add_routes(api.routes)
    return app
