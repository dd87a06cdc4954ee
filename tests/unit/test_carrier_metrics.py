"""Per-trunk carrier counters from settled outcomes: every attempt counted once."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from rating.ledger import Outcome
from switch.attempt_times import final_listed
from tollgate.metrics import Metrics

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_the_carrier_used_is_listed_only_when_it_failed_as_the_last_attempt() -> None:
    assert final_listed("down:503;up:503:1200:300;", "up", answered=False)
    assert not final_listed("down:503;up:503;", "up", answered=True)
    assert not final_listed("up:503;down:503;", "up", answered=False)  # cancelled on "up"
    assert not final_listed("", "up", answered=False)
    assert not final_listed("up:503;", "", answered=False)


def test_an_unanswered_last_attempt_counts_once_in_attempts_and_pdd() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    failed = "down:503:1000:150;up:503:1200:300;"
    metrics.carrier_outcome(Outcome(False, 0, AT, "CONGESTION", endpoint="up", attempts=failed,
                                    timing="1200:300"))  # fmt: skip
    # the caller gave up while "up" rang: that attempt is not among the failed ones
    metrics.carrier_outcome(Outcome(False, 0, AT, "CANCEL", endpoint="up", timing="9000:400"))
    metrics.carrier_outcome(Outcome(True, 60, AT, "ANSWER", endpoint="up", timing="2000:200"))
    up = {"trunk": "up"}
    assert _value(registry, "tollgate_carrier_attempts_total", **up) == 3
    assert _value(registry, "tollgate_carrier_answered_total", **up) == 1
    assert _value(registry, "tollgate_carrier_billsec_total", **up) == 60
    assert _value(registry, "tollgate_carrier_failures_total", trunk="up", code="503") == 1
    assert _value(registry, "tollgate_carrier_pdd_seconds_count", **up) == 3
    assert round(_value(registry, "tollgate_carrier_pdd_seconds_sum", **up), 3) == 0.9
    assert _value(registry, "tollgate_carrier_attempts_total", trunk="down") == 1
