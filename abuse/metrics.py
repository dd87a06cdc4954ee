"""Prometheus metrics of the abuse detector (registry injectable, as everywhere)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from abuse.signals import Severity


class AbuseMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, rules: Iterable[str] = ()
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.findings = Counter(
            "tollgate_abuse_findings_total",
            "Findings opened or escalated, by rule and (new) severity.",
            ["rule", "severity"],
            registry=self.registry,
        )
        # Exported at 0 from the start, so that increase() sees a rule's first finding.
        for rule in rules:
            for severity in Severity:
                self.findings.labels(rule, severity.value)
        self.suspensions = Counter(
            "tollgate_abuse_suspensions_total",
            "Accounts suspended by the abuse detector.",
            registry=self.registry,
        )
        self.warnings = Counter(
            "tollgate_abuse_warnings_total",
            "Warnings with a deadline sent to customers (terms §5.1).",
            registry=self.registry,
        )
        self.closures_proposed = Counter(
            "tollgate_abuse_closures_proposed_total",
            "Account closures proposed to an operator because abuse repeated.",
            registry=self.registry,
        )
        self.processed = Counter(
            "tollgate_abuse_cdrs_processed_total",
            "CDR stream entries the abuse detector processed and acknowledged.",
            registry=self.registry,
        )
        self.inbound = Counter(
            "tollgate_abuse_inbound_processed_total",
            "Inbound-call stream entries the abuse detector processed and acknowledged.",
            registry=self.registry,
        )
        self.alert_failures = Counter(
            "tollgate_abuse_alert_failures_total",
            "Webhook alerts that could not be delivered (timeout, error, non-2xx).",
            registry=self.registry,
        )
