"""Broadcasting (fax, voicemail, robocalls): one caller id reaching many distinct numbers in
an hour with low ASR and short, uniform durations — a recording played to whoever answers.
Figures are ours (the carriers' policies name the pattern, not numbers): 30 distinct
destinations an hour (90: critical), ASR under 60 %, answered calls averaging <= 30 s with
a coefficient of variation <= 0.35, judged once at least 5 calls were answered."""

from __future__ import annotations

import math
from dataclasses import dataclass

from abuse.detectors.base import Detector, Evaluate, Scope, ratio
from abuse.events import CallEvent
from abuse.params import RuleParams
from abuse.signals import Lookup, Signal, grade
from abuse.window import Plan, part


@dataclass(frozen=True)
class BroadcastParams(RuleParams):
    window_s: int = 3600
    min_distinct: int = 30
    critical_factor: float = 3.0
    low_asr: float = 0.6
    min_answered: int = 5
    short_avg_s: float = 30.0
    max_cv: float = 0.35  # standard deviation / mean of answered durations


class Broadcast(Detector[BroadcastParams]):
    name = "broadcasting"
    params_type = BroadcastParams

    def on_call(
        self, ev: CallEvent, p: BroadcastParams, plan: Plan, scope: Scope
    ) -> Evaluate | None:
        if not ev.placed or not ev.digits:
            return None
        k, who = scope.keys, part(ev.caller or "-")
        span = p.window_s * 1000
        plan.add(k("bd", who), ev.digits, ev.at_ms, span)  # one member per destination
        billsec = ev.billsec if ev.answered else 0
        values = (int(ev.answered), billsec, billsec * billsec)
        calls = plan.agg(k("bk", who), k("sums"), ev.call_id, values, ev.at_ms, span)
        distinct = plan.count(k("bd", who), span)

        def evaluate() -> list[Signal]:
            severity = grade(distinct.value, p.min_distinct, p.min_distinct * p.critical_factor)
            placed, answered, total, squares = calls.value
            if severity is None or answered < p.min_answered:
                return []
            asr = ratio(answered, placed)
            mean = total / answered
            spread = math.sqrt(max(squares / answered - mean * mean, 0.0))
            cv = spread / mean if mean else 0.0
            if asr >= p.low_asr or mean > p.short_avg_s or cv > p.max_cv:
                return []
            return [
                self.signal(
                    scope,
                    ev.at_ms,
                    ev.caller[:64],
                    severity,
                    {
                        "distinct": distinct.value,
                        "placed": placed,
                        "answered": answered,
                        "asr": asr,
                        "avg_billsec": mean,
                        "cv_billsec": cv,
                    },
                    {
                        "min_distinct": p.min_distinct,
                        "critical_factor": p.critical_factor,
                        "low_asr": p.low_asr,
                        "short_avg_s": p.short_avg_s,
                        "max_cv": p.max_cv,
                    },
                    p.window_s,
                    lookup=Lookup(k("bk", who), ev.at_ms - span, ev.at_ms),
                    detail={"caller": ev.caller[:64]},
                )
            ]

        return evaluate
