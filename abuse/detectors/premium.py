"""Premium attempts: calls refused as PREMIUM_BLOCKED, again and again. One is a mistake;
the operator's terms let it terminate accounts that keep trying. Figures are ours: 3 in a
day (10: critical)."""

from __future__ import annotations

from dataclasses import dataclass

from abuse.detectors.base import Detector, Evaluate, Scope
from abuse.events import CallEvent
from abuse.params import RuleParams
from abuse.window import Plan


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
        return self.counted(
            ev,
            plan,
            scope,
            "prem",
            p.window_s,
            p.attempts,
            p.critical,
            subject="",
            figure="premium_denials",
            threshold={"attempts": p.attempts, "critical": p.critical},
        )
