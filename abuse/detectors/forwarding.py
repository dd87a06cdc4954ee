"""Excessive call forwarding: forwarded legs (RDNIS / SIP Diversion present) per hour, and
forwarded legs to international, high-risk or premium numbers — how a hijacked voicemail or
PBX is turned into a free path abroad. Figures are ours: 20 legs an hour (60: critical);
3 risky legs an hour (10: critical)."""

from __future__ import annotations

from dataclasses import dataclass

from abuse.detectors.base import Detector, Evaluate, Scope
from abuse.events import CallEvent
from abuse.params import RuleParams
from abuse.window import Plan


@dataclass(frozen=True)
class ForwardingParams(RuleParams):
    window_s: int = 3600
    legs: int = 20
    legs_critical: int = 60
    risky_classes: tuple[str, ...] = ("international", "high_risk", "premium")
    risky_legs: int = 3
    risky_critical: int = 10


class Forwarding(Detector[ForwardingParams]):
    name = "forwarding"
    params_type = ForwardingParams

    def on_call(
        self, ev: CallEvent, p: ForwardingParams, plan: Plan, scope: Scope
    ) -> Evaluate | None:
        if not ev.forwarded:
            return None
        checks = [
            self.counted(
                ev,
                plan,
                scope,
                "fw",
                p.window_s,
                p.legs,
                p.legs_critical,
                subject="legs",
                figure="forwarded_legs",
                threshold={"legs": p.legs, "critical": p.legs_critical},
            )
        ]
        if ev.number_class in p.risky_classes:
            checks.append(
                self.counted(
                    ev,
                    plan,
                    scope,
                    "fwx",
                    p.window_s,
                    p.risky_legs,
                    p.risky_critical,
                    subject="risky",
                    figure="risky_legs",
                    threshold={
                        "risky_legs": p.risky_legs,
                        "critical": p.risky_critical,
                        "classes": ",".join(p.risky_classes),
                    },
                )
            )
        return lambda: [signal for check in checks for signal in check()]
