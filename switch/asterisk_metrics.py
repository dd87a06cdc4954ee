"""Asterisk's own metrics (res_prometheus: channels, calls, endpoints and their states,
bridges, uptime) re-exported for Prometheus by a process next to Asterisk.

Why a relay: res_prometheus answers on Asterisk's HTTP server, which also serves ARI and
listens on loopback only (SECURITY.md). `tollgate asterisk metrics` runs in the same
network namespace, reads http://127.0.0.1:<ARI port>/metrics at every scrape and serves it
on its own port with `tollgate_asterisk_up` (1 when Asterisk answered)."""

from __future__ import annotations

import argparse
import os
import threading
import urllib.request
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


class AsteriskCollector(Collector):
    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tollgate_asterisk_up", "1 when Asterisk's res_prometheus answered this scrape."
        )
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                text = resp.read().decode("utf-8", errors="replace")
            families = list(text_string_to_metric_families(text))
        except (OSError, ValueError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def cmd_metrics(args: argparse.Namespace) -> None:
    url = args.url or os.environ.get("TOLLGATE_ASTERISK_METRICS_URL", "")
    url = url or "http://127.0.0.1:8088/metrics"
    port = int(os.environ.get("TOLLGATE_METRICS_PORT", "0") or 0) or 9467
    registry = CollectorRegistry()
    registry.register(AsteriskCollector(url))
    start_http_server(port, os.environ.get("TOLLGATE_METRICS_HOST", "127.0.0.1"), registry=registry)
    print(f"relaying {url} on :{port}", flush=True)
    threading.Event().wait()  # the HTTP server thread does the work until the process ends
