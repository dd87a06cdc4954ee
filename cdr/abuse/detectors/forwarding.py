"""Excessive call forwarding: forwarded legs (RDNIS / SIP Diversion present) per hour, and
forwarded legs to international, high-risk or premium numbers — how a hijacked voicemail or
PBX is turned into a free path abroad. Figures are ours: 20 legs an hour (60: critical);
3 risky legs an hour (10: critical)."""

from __future__ import annotations

from dataclasses import dataclass

from cdr.abuse.detectors.base import Detector, Evaluate, Scope
from cdr.abuse.events import CallEvent
from cdr.abuse.params import RuleParams
from cdr.abuse.signals import Lookup, Signal, grade
from cdr.abuse.window import Plan


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
        k, span = scope.keys, p.window_s * 1000
        plan.add(k("fw"), ev.call_id, ev.at_ms, span)
        legs = plan.count(k("fw"), span)
        risky = None
        if ev.number_class in p.risky_classes:
            plan.add(k("fwx"), ev.call_id, ev.at_ms, span)
            risky = plan.count(k("fwx"), span)

        def evaluate() -> list[Signal]:
            out = []
            at = ev.at_ms
            severity = grade(legs.value, p.legs, p.legs_critical)
            if severity is not None:
                out.append(
                    self.signal(
                        scope,
                        at,
                        "legs",
                        severity,
                        {"forwarded_legs": legs.value},
                        {"legs": p.legs, "critical": p.legs_critical},
                        p.window_s,
                        lookup=Lookup(k("fw"), at - span, at),
                    )
                )
            if risky is not None:
                severity = grade(risky.value, p.risky_legs, p.risky_critical)
                if severity is not None:
                    out.append(
                        self.signal(
                            scope,
                            at,
                            "risky",
                            severity,
                            {"risky_legs": risky.value},
                            {
                                "risky_legs": p.risky_legs,
                                "critical": p.risky_critical,
                                "classes": ",".join(p.risky_classes),
                            },
                            p.window_s,
                            lookup=Lookup(k("fwx"), at - span, at),
                        )
                    )
            return out

        return evaluate
