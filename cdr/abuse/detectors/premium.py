"""Premium attempts: calls refused as PREMIUM_BLOCKED, again and again. One is a mistake;
the operator's terms let it terminate accounts that keep trying. Figures are ours: 3 in a
day (10: critical)."""

from __future__ import annotations

from dataclasses import dataclass

from cdr.abuse.detectors.base import Detector, Evaluate, Scope
from cdr.abuse.events import CallEvent
from cdr.abuse.params import RuleParams
from cdr.abuse.signals import Lookup, Signal, grade
from cdr.abuse.window import Plan


@dataclass(frozen=True)
class PremiumParams(RuleParams):
    window_s: int = 86400
    attempts: int = 3
    critical: int = 10


class Premium(Detector[PremiumParams]):
    name = "premium"
    params_type = PremiumParams

    def on_call(self, ev: CallEvent, p: PremiumParams, plan: Plan, scope: Scope) -> Evaluate | None:
        if ev.reason != "PREMIUM_BLOCKED":
            return None
        k, span = scope.keys, p.window_s * 1000
        plan.add(k("prem"), ev.call_id, ev.at_ms, span)
        denied = plan.count(k("prem"), span)

        def evaluate() -> list[Signal]:
            severity = grade(denied.value, p.attempts, p.critical)
            if severity is None:
                return []
            return [
                self.signal(
                    scope,
                    ev.at_ms,
                    "",
                    severity,
                    {"premium_denials": denied.value},
                    {"attempts": p.attempts, "critical": p.critical},
                    p.window_s,
                    lookup=Lookup(k("prem"), ev.at_ms - span, ev.at_ms),
                )
            ]

        return evaluate
