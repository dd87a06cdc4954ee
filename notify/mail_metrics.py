"""Delivery metrics: failures and retries are visible (tollgate_mail_total{outcome})."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

OUTCOMES = ("sent", "retry", "failed")


class MailMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        self.delivered = Counter(
            "tollgate_mail",
            "E-mail delivery attempts by outcome (retry: will be tried again; failed: gave up)",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:  # a counting alert sees the first event
            self.delivered.labels(outcome)
        self.pending = Gauge(
            "tollgate_mail_pending", "E-mails in the outbox not yet sent", registry=registry
        )
