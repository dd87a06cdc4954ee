"""What every detector is: thresholds of one type, and two hooks that put an event's
window operations on a Plan and return how to judge the figures once the plan has run."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from abuse.events import CallEvent, InboundEvent
from abuse.params import RuleParams
from abuse.signals import Figure, Lookup, Severity, Signal, grade
from abuse.window import AccountKeys, Plan

P = TypeVar("P", bound=RuleParams)
Evaluate = Callable[[], list[Signal]]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Scope:
    """The account an event belongs to, as the detectors need it."""

    account: str
    keys: AccountKeys
    home: str  # ISO region of the account ("PL"), for "foreign"


class Detector(ABC, Generic[P]):
    name: ClassVar[str]
    params_type: ClassVar[type[Any]]

    def defaults(self) -> P:
        default: P = self.params_type()
        return default

    def on_call(self, ev: CallEvent, p: P, plan: Plan, scope: Scope) -> Evaluate | None:
        return None

    def on_inbound(self, ev: InboundEvent, p: P, plan: Plan, scope: Scope) -> Evaluate | None:
        return None

    def signal(
        self,
        scope: Scope,
        at_ms: int,
        subject: str,
        severity: Severity,
        figures: Mapping[str, Figure],
        threshold: Mapping[str, Figure],
        window_s: int,
        *,
        call_ids: tuple[str, ...] = (),
        lookup: Lookup | None = None,
        detail: Mapping[str, Figure | list[str]] | None = None,
    ) -> Signal:
        return Signal(
            self.name,
            scope.account,
            subject,
            severity,
            at_ms,
            {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
            threshold,
            window_s,
            call_ids,
            lookup,
            detail or {},
        )

    def counted(
        self,
        ev: CallEvent,
        plan: Plan,
        scope: Scope,
        window: str,
        window_s: int,
        warning: int,
        critical: int,
        *,
        subject: str,
        figure: str,
        threshold: Mapping[str, Figure],
    ) -> Evaluate:
        """The common rule: put the call in a sliding window, count the window, and signal
        when the count reaches `warning` (or `critical`), with the window's calls as evidence."""
        key, span = scope.keys(window), window_s * 1000
        plan.add(key, ev.call_id, ev.at_ms, span)
        count = plan.count(key, span)

        def evaluate() -> list[Signal]:
            severity = grade(count.value, warning, critical)
            if severity is None:
                return []
            return [
                self.signal(
                    scope,
                    ev.at_ms,
                    subject,
                    severity,
                    {figure: count.value},
                    threshold,
                    window_s,
                    lookup=Lookup(key, ev.at_ms - span, ev.at_ms),
                )
            ]

        return evaluate


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
