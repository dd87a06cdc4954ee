"""Revenue-share fraud (IRSF): traffic pumped to numbers whose operator pays the fraudster.

- high_risk_burst: attempts (refused ones too: fraudsters test first) to high-risk classes
  or ranges (+881/+882/+883/+870 and small-island +1 codes are classed high_risk; +979 and
  more can be added in `ranges`) — 3 in an hour (10: critical);
- parallel_long: answered international/high-risk calls of >= 10 min overlapping in time —
  4 at once (8: critical); a hijacked account runs many long calls side by side;
- spend_velocity: last hour's spend against the account's own hourly average over the 7
  whole (UTC) days before today: `spend_factor` (10x) that baseline, never under
  `spend_floor` (100.00 of the account's currency an hour, so new accounts with no history
  are covered); critical at `critical_factor` (3x) that threshold. Spend is counted when
  the call ends.
The 3/10 attempts, 4/8 parallel, 10x, 100.00/h figures are ours; the patterns are the
carriers' (reference: abuse.md)."""

from __future__ import annotations

from dataclasses import dataclass

from abuse.detectors.base import DAY_MS, HOUR_MS, MINUTE_MS, Detector, Evaluate, Scope
from abuse.events import CallEvent
from abuse.params import RuleParams
from abuse.signals import Lookup, Signal, grade
from abuse.window import Plan

SPEND_BUCKET_MS = 5 * MINUTE_MS


@dataclass(frozen=True)
class RevenueShareParams(RuleParams):
    burst_window_s: int = 3600
    burst_calls: int = 3
    burst_critical: int = 10
    classes: tuple[str, ...] = ("high_risk",)
    ranges: tuple[str, ...] = ("979",)  # E.164 digit prefixes treated as high risk
    long_s: int = 600
    parallel: int = 4
    parallel_critical: int = 8
    parallel_classes: tuple[str, ...] = ("international", "high_risk")
    spend_window_s: int = 3600
    baseline_days: int = 7
    spend_factor: float = 10.0
    spend_floor: int = 100_000_000  # micro-units an hour
    critical_factor: float = 3.0


class RevenueShare(Detector[RevenueShareParams]):
    name = "revenue_share"
    params_type = RevenueShareParams

    def on_call(
        self, ev: CallEvent, p: RevenueShareParams, plan: Plan, scope: Scope
    ) -> Evaluate | None:
        k = scope.keys
        checks: list[Evaluate] = []
        risky = ev.number_class in p.classes or (ev.digits != "" and ev.digits.startswith(p.ranges))
        if risky:
            checks.append(self._burst(ev, p, plan, scope))
        if ev.answered and ev.billsec >= p.long_s and ev.number_class in p.parallel_classes:
            start = ev.end_ms - ev.billsec * 1000
            span = 4 * HOUR_MS  # longer than any call: the ledger grants at most 3 h
            n = plan.overlap(k("par"), ev.call_id, start, ev.end_ms, span)

            def parallel() -> list[Signal]:
                severity = grade(n.value, p.parallel, p.parallel_critical)
                if severity is None:
                    return []
                return [
                    self.signal(
                        scope,
                        ev.at_ms,
                        "parallel_long",
                        severity,
                        {"parallel": n.value},
                        {
                            "parallel": p.parallel,
                            "critical": p.parallel_critical,
                            "long_s": p.long_s,
                        },
                        span // 1000,
                        lookup=Lookup(k("par"), start, ev.end_ms + span),
                    )
                ]

            checks.append(parallel)
        if ev.cost > 0:
            checks.append(self._velocity(ev, p, plan, scope))
        if not checks:
            return None
        return lambda: [s for check in checks for s in check()]

    def _burst(self, ev: CallEvent, p: RevenueShareParams, plan: Plan, scope: Scope) -> Evaluate:
        return self.counted(
            ev,
            plan,
            scope,
            "hr",
            p.burst_window_s,
            p.burst_calls,
            p.burst_critical,
            subject="high_risk_burst",
            figure="high_risk_calls",
            threshold={
                "calls": p.burst_calls,
                "critical": p.burst_critical,
                "classes": ",".join(p.classes),
                "ranges": ",".join(p.ranges),
            },
        )

    def _velocity(self, ev: CallEvent, p: RevenueShareParams, plan: Plan, scope: Scope) -> Evaluate:
        k, end = scope.keys, ev.end_ms
        span, history = p.spend_window_s * 1000, p.baseline_days * DAY_MS
        recent = k("sp", str(SPEND_BUCKET_MS))
        daily = k("spd")  # whole days: the baseline moves slowly, eight fields suffice
        plan.add(k("spc"), f"{ev.call_id}|{ev.cost}", end, span)
        plan.bump(recent, SPEND_BUCKET_MS, span, at_ms=end, c=ev.cost)
        plan.bump(daily, DAY_MS, history + DAY_MS, at_ms=end, c=ev.cost)
        last = plan.total(recent, SPEND_BUCKET_MS, span, "c", at_ms=end)
        past = plan.total(daily, DAY_MS, history, "c", at_ms=end, skip_current=True)

        def evaluate() -> list[Signal]:
            spent = last.value["c"]
            baseline = past.value["c"] / (history / HOUR_MS)
            limit = max(baseline * p.spend_factor, float(p.spend_floor))
            severity = grade(spent, limit, limit * p.critical_factor)
            if severity is None:
                return []
            return [
                self.signal(
                    scope,
                    end,
                    "spend_velocity",
                    severity,
                    {"spent_window": spent, "baseline_per_hour": baseline, "threshold": limit},
                    {
                        "spend_factor": p.spend_factor,
                        "spend_floor": p.spend_floor,
                        "critical_factor": p.critical_factor,
                        "baseline_days": p.baseline_days,
                    },
                    p.spend_window_s,
                    lookup=Lookup(k("spc"), end - span, end),
                )
            ]

        return evaluate
