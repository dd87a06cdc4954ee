"""The notification worker's metrics: notices by status (from PostgreSQL, so every replica
exports the same) and this process's delivery attempts by channel and result."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

STATUSES = ("pending", "sent", "failed", "opted_out")
RESULTS = ("sent", "retried", "failed")


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.notices = Gauge(
            "tollgate_notices",
            "Notices recorded, by status (failed ones need an operator: no channel, refused).",
            ["status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "tollgate_notice_deliveries_total",
            "Delivery attempts of notices by this process, by result.",
            ["result"],
            registry=self.registry,
        )
        for result in RESULTS:
            self.deliveries.labels(result)

    def delivered(self, sent: int, retried: int, failed: int) -> None:
        for result, count in (("sent", sent), ("retried", retried), ("failed", failed)):
            self.deliveries.labels(result).inc(count)

    async def export(self, pool: asyncpg.Pool) -> None:
        rows = await pool.fetch("select status, count(*) as n from notices group by status")
        found = {r["status"]: r["n"] for r in rows}
        for status in STATUSES:
            self.notices.labels(status).set(found.get(status, 0))
