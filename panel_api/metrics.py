"""Prometheus metrics of the panel process, and the middleware that fills them."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from panel_api.errors import Handler


class PanelMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "tollgate_panel_requests_total",
            "Panel HTTP requests, by route (its pattern, not the path) and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tollgate_panel_request_duration_seconds",
            "Time to answer a panel request (a streamed download: until its last byte).",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
        )
        self.csv_rows = Counter(
            "tollgate_panel_csv_rows_total",
            "CDR rows streamed as CSV downloads.",
            registry=self.registry,
        )
        self.downloads_stalled = Counter(
            "tollgate_panel_downloads_stalled_total",
            "Downloads cut off because their client stopped reading (send timeout).",
            registry=self.registry,
        )
        self.auth_blocked = Counter(
            "tollgate_panel_auth_blocked_total",
            "Requests refused with 429 because their address failed authentication too often.",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "tollgate_panel_rate_limited_total",
            "Requests refused with 429 by the per-token rate limit.",
            registry=self.registry,
        )


METRICS = web.AppKey("metrics", PanelMetrics)


def route_of(request: web.Request) -> str:
    """The matched route's pattern: bounded label values whatever paths clients try."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    start = time.perf_counter()
    status = 500  # what a client sees when the handler dies with the connection
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = route_of(request)
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route, request.method).observe(time.perf_counter() - start)
