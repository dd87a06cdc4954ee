"""The dashboard shows every carrier metric tollgate exports (attempts, answered, billed
seconds, failures, post-dial delay), per trunk, in its Carriers row."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from tollgate.metrics import Metrics

BOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana" / "dashboards" / "tollgate.json"


def test_every_carrier_metric_is_on_the_dashboard_per_trunk() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = {m.name for m in registry.collect()}
    types = {m.name: m.type for m in registry.collect()}
    carrier = {
        n + ("_bucket" if types[n] == "histogram" else "_total")
        for n in names
        if n.startswith("tollgate_carrier")
    }
    assert len(carrier) == 5
    panels = json.loads(BOARD.read_text())["panels"]
    row = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Carriers")
    after = panels[row + 1:]
    below = after[: next((i for i, p in enumerate(after) if p["type"] == "row"), len(after))]
    exprs = [t["expr"] for p in below for t in p["targets"]]
    for name in carrier:
        assert any(name in e and "by (trunk" in e for e in exprs), name
