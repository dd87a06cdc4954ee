"""A Prometheus endpoint for a process run on its own (cdr-writer, abuse run)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, start_http_server


def standalone_metrics() -> CollectorRegistry | None:
    """A Prometheus endpoint for a process run on its own (cdr-writer, abuse run), when
    TOLLGATE_METRICS_PORT is set; its registry, or None."""
    port = int(os.environ.get("TOLLGATE_METRICS_PORT", "0") or 0)
    if not port:
        return None
    registry = CollectorRegistry()
    start_http_server(port, os.environ.get("TOLLGATE_METRICS_HOST", "127.0.0.1"), registry=registry)
    return registry
