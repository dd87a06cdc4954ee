"""Prometheus metrics of the CDR writer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class CdrMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.backlog = Gauge(
            "tollgate_cdr_stream_backlog",
            "CDR stream entries the writer has not yet stored and acknowledged.",
            ["stream"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "tollgate_cdr_oldest_pending_seconds",
            "Age of the oldest CDR stream entry not yet acknowledged (0 when none).",
            ["stream"],
            registry=self.registry,
        )
        self.written = Counter(
            "tollgate_cdrs_written_total",
            "CDR rows inserted or replaced in PostgreSQL.",
            registry=self.registry,
        )
        self.rejects = Counter(
            "tollgate_cdr_rejects_total",
            "CDR stream entries kept in cdr_rejects instead of cdrs.",
            registry=self.registry,
        )
        self.skipped = Gauge(
            "tollgate_cdr_streams_skipped",
            "CDR streams the writer's last round could not read (their CDRs wait).",
            registry=self.registry,
        )
        self.skipped.set(0)
        self.write_errors = Counter(
            "tollgate_cdr_write_errors_total",
            "Failed attempts to move a batch (it stays pending and is retried).",
            ["service"],
            registry=self.registry,
        )
        for service in ("redis", "postgresql"):
            self.write_errors.labels(service)  # at 0 from the start: increase() sees the first
