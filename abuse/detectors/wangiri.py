"""Wangiri ("one ring and cut"): many very short inbound calls from one foreign number range,
so that people call back a premium-priced number. Inbound calls never reach the ledger: the
switch adapter feeds them to the `{prefix}:inbound` stream (see the package docstring).

- inbound: >= 5 inbound calls of <= 5 s from one foreign range (the first 7 digits of the
  E.164 number) within an hour: info (the account's lines are being baited);
- callbacks: an outbound call to a range that sent >= 5 such calls within the last 24 h:
  warning at the first callback, critical at the third (calls keep going to the bait).
Figures are ours; the pattern is the carriers' (reference: abuse.md)."""

from __future__ import annotations

from dataclasses import dataclass

from abuse.detectors.base import Detector, Evaluate, Scope
from abuse.events import FOREIGN_CLASSES, CallEvent, InboundEvent
from abuse.params import RuleParams
from abuse.signals import Lookup, Severity, Signal, grade
from abuse.window import Plan
from rating.numbers import InvalidNumber, NumberClass, normalise


@dataclass(frozen=True)
class WangiriParams(RuleParams):
    short_s: int = 5
    range_digits: int = 7
    inbound_window_s: int = 3600
    inbound_calls: int = 5
    callback_window_s: int = 86400
    callbacks: int = 1
    callbacks_critical: int = 3


class Wangiri(Detector[WangiriParams]):
    name = "wangiri"
    params_type = WangiriParams

    def on_inbound(
        self, ev: InboundEvent, p: WangiriParams, plan: Plan, scope: Scope
    ) -> Evaluate | None:
        if ev.duration_s > p.short_s:
            return None
        try:
            number = normalise(ev.caller, scope.home)
        except InvalidNumber:
            return None  # withheld or garbage caller ids say nothing about a range
        if number.country == scope.home or number.number_class is NumberClass.EMERGENCY:
            return None
        prefix = number.digits[: p.range_digits]
        key = scope.keys("wi", prefix)
        plan.add(key, ev.id, ev.at_ms, p.callback_window_s * 1000)
        span = p.inbound_window_s * 1000
        recent = plan.count(key, span)

        def evaluate() -> list[Signal]:
            if recent.value < p.inbound_calls:
                return []
            return [
                self.signal(
                    scope,
                    ev.at_ms,
                    "+" + prefix,
                    Severity.INFO,
                    {"short_inbound": recent.value},
                    {
                        "inbound_calls": p.inbound_calls,
                        "short_s": p.short_s,
                        "range_digits": p.range_digits,
                    },
                    p.inbound_window_s,
                    detail={"caller": number.e164},
                )
            ]

        return evaluate

    def on_call(self, ev: CallEvent, p: WangiriParams, plan: Plan, scope: Scope) -> Evaluate | None:
        if ev.number_class not in FOREIGN_CLASSES or not ev.digits:
            return None
        prefix = ev.digits[: p.range_digits]
        span = p.callback_window_s * 1000
        inbound = plan.count(scope.keys("wi", prefix), span)
        calls = scope.keys("wcb", prefix)
        plan.add(calls, ev.call_id, ev.at_ms, span)  # every call to the range: cheap, 1 day
        callbacks = plan.count(calls, span)

        def evaluate() -> list[Signal]:
            if inbound.value < p.inbound_calls:
                return []
            severity = grade(callbacks.value, p.callbacks, p.callbacks_critical)
            if severity is None:
                return []
            return [
                self.signal(
                    scope,
                    ev.at_ms,
                    "+" + prefix,
                    severity,
                    {"short_inbound": inbound.value, "callbacks": callbacks.value},
                    {
                        "inbound_calls": p.inbound_calls,
                        "callbacks": p.callbacks,
                        "critical": p.callbacks_critical,
                        "range_digits": p.range_digits,
                    },
                    p.callback_window_s,
                    lookup=Lookup(calls, ev.at_ms - span, ev.at_ms),
                )
            ]

        return evaluate
