"""What every detector is: thresholds of one type, and two hooks that put an event's
window operations on a Plan and return how to judge the figures once the plan has run."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from cdr.abuse.events import CallEvent, InboundEvent
from cdr.abuse.params import RuleParams
from cdr.abuse.signals import Figure, Lookup, Severity, Signal
from cdr.abuse.window import AccountKeys, Plan

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


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
