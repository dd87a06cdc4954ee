"""Autodialing: machine-paced attempts that people do not answer (or answer briefly), and
numbers dialled in order. Four signals, each its own finding subject:

- rate: >= 5 attempts a minute or >= 20 in 6 h, with ASR under 60 % and a short average
  duration (carriers' autodialer figures); critical at `critical_factor` times the counts;
- short_calls: more than 15 % of answered calls last <= 6 s, over >= 100 answered calls in
  a day (Telnyx, Genesys);
- low_asr: under 60 % of placed calls answered, over >= 100 calls in a day, by more than
  chance explains (2 standard errors): info only, a sales team may have that;
- sequential: n, n+1, n+2 ... dialled within 6 h (in any order), run of 5 (10: critical).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abuse.detectors.base import MINUTE_MS, Detector, Evaluate, Scope, ratio
from abuse.events import CallEvent
from abuse.params import RuleParams
from abuse.signals import Lookup, Severity, Signal, grade
from abuse.window import Plan


@dataclass(frozen=True)
class AutodialParams(RuleParams):
    per_minute: int = 5
    per_window: int = 20
    window_s: int = 6 * 3600
    low_asr: float = 0.6
    min_placed: int = 5  # ASR means little over fewer placed calls
    short_avg_s: float = 30.0
    critical_factor: float = 3.0
    short_s: int = 6
    short_ratio: float = 0.15
    short_critical_ratio: float = 0.5
    short_min_calls: int = 100
    asr_min_calls: int = 100
    asr_z: float = 2.0  # low_asr alone: ASR this many standard errors under low_asr
    day_s: int = 86400
    sequential_run: int = 5
    sequential_critical: int = 10
    sequential_window_s: int = 6 * 3600


class Autodial(Detector[AutodialParams]):
    name = "autodialing"
    params_type = AutodialParams

    def on_call(
        self, ev: CallEvent, p: AutodialParams, plan: Plan, scope: Scope
    ) -> Evaluate | None:
        k = scope.keys
        span, day = p.window_s * 1000, p.day_s * 1000
        plan.add(k("att"), ev.call_id, ev.at_ms, max(span, MINUTE_MS))
        minute, attempts = plan.count(k("att"), MINUTE_MS), plan.count(k("att"), span)
        # placed calls as running sums: (count, answered, seconds) over the window and
        # (count, answered, short) over the day
        short = ev.answered and ev.billsec <= p.short_s
        if ev.placed:
            talk = (int(ev.answered), ev.billsec if ev.answered else 0)
            recent = plan.agg(k("plc"), k("sums"), ev.call_id, talk, ev.at_ms, span)
            ends = (int(ev.answered), int(short))
            daily = plan.agg(k("plcd"), k("sums"), ev.call_id, ends, ev.at_ms, day)
        else:
            recent = plan.sums(k("plc"), k("sums"), 2)
            daily = plan.sums(k("plcd"), k("sums"), 2)
        if short:
            plan.add(k("sht"), ev.call_id, ev.at_ms, day)  # for the evidence only
        run = None
        if ev.digits:
            run = plan.seq(
                k("seq"),
                k("seqid"),
                ev.digits,
                ev.call_id,
                p.sequential_window_s * 1000,
                p.sequential_critical,
            )

        def evaluate() -> list[Signal]:
            out: list[Signal] = []
            at = ev.at_ms
            placed, answered, seconds = recent.value
            placed_day, answered_day, short_day = daily.value
            asr = ratio(answered, placed)
            avg = ratio(seconds, answered)
            figures = {
                "attempts_1m": minute.value,
                "attempts_window": attempts.value,
                "placed_window": placed,
                "asr_window": asr,
                "avg_billsec_window": avg,
            }
            if placed >= p.min_placed and asr < p.low_asr and avg < p.short_avg_s:
                f = p.critical_factor
                severity = max(
                    (
                        s
                        for s in (
                            grade(minute.value, p.per_minute, p.per_minute * f),
                            grade(attempts.value, p.per_window, p.per_window * f),
                        )
                        if s is not None
                    ),
                    key=lambda s: s.rank,
                    default=None,
                )
                if severity is not None:
                    threshold = {
                        "per_minute": p.per_minute,
                        "per_window": p.per_window,
                        "low_asr": p.low_asr,
                        "short_avg_s": p.short_avg_s,
                        "critical_factor": f,
                    }
                    window = Lookup(k("att"), at - p.window_s * 1000, at)
                    out.append(
                        self.signal(
                            scope,
                            at,
                            "rate",
                            severity,
                            figures,
                            threshold,
                            p.window_s,
                            lookup=window,
                        )
                    )
            share = ratio(short_day, answered_day)
            if answered_day >= p.short_min_calls and share > p.short_ratio:
                severity = Severity.WARNING
                if p.short_critical_ratio and share >= p.short_critical_ratio:
                    severity = Severity.CRITICAL
                out.append(
                    self.signal(
                        scope,
                        at,
                        "short_calls",
                        severity,
                        {
                            "short": short_day,
                            "answered": answered_day,
                            "short_ratio": share,
                        },
                        {
                            "short_s": p.short_s,
                            "short_ratio": p.short_ratio,
                            "short_critical_ratio": p.short_critical_ratio,
                            "min_calls": p.short_min_calls,
                        },
                        p.day_s,
                        lookup=Lookup(k("sht"), at - day, at),
                    )
                )
            asr_day = ratio(answered_day, placed_day)
            # significantly under: a 70 % business dips under 60 % now and then by chance
            upper = asr_day + p.asr_z * math.sqrt(asr_day * (1 - asr_day) / max(placed_day, 1))
            if placed_day >= p.asr_min_calls and upper < p.low_asr:
                out.append(
                    self.signal(
                        scope,
                        at,
                        "low_asr",
                        Severity.INFO,
                        {
                            "placed": placed_day,
                            "answered": answered_day,
                            "asr": asr_day,
                            "asr_upper": upper,
                        },
                        {"low_asr": p.low_asr, "min_calls": p.asr_min_calls, "z": p.asr_z},
                        p.day_s,
                        lookup=Lookup(k("plcd"), at - day, at),
                    )
                )
            if run is not None:
                r = run.value
                severity = grade(r.length, p.sequential_run, p.sequential_critical)
                if severity is not None:
                    out.append(
                        self.signal(
                            scope,
                            at,
                            "sequential",
                            severity,
                            {"run": r.length, "first": "+" + r.first},
                            {"run": p.sequential_run, "critical": p.sequential_critical},
                            p.sequential_window_s,
                            call_ids=r.call_ids,
                        )
                    )
            return out

        return evaluate
