"""Prometheus metrics of a tollgate process (names follow Prometheus conventions)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rating.ledger import Decision, Grant, Outcome, Reason
from rating.repair import Drift, Repair
from switch.attempt_times import attempt_pdds, final_listed, pdd_of
from switch.fastagi import Decided
from switch.outcome_log import LogScan
from switch.parking import Scan
from switch.sessions import SessionController

# Label sets known in advance are exported at 0 from the start: a labelled counter that
# first appears at 1 is invisible to increase(), and its first event would raise no alert.
AGI_EVENT_KINDS = (
    "unknown_script",
    "malformed",
    "budget_exceeded",
    "hangup",
    "error",
    "rejected_overload",
    "rejected_peer",
    "rejected_peer_limit",
)
AGI_SCRIPTS = ("authorize", "finish", "other")
ALLOW_REASONS = (Reason.OK, Reason.EMERGENCY)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.authorizations = Counter(
            "tollgate_authorizations_total",
            "Authorization decisions.",
            ["switch", "decision", "reason"],
            registry=self.registry,
        )
        self.authorize_seconds = Histogram(
            "tollgate_authorize_duration_seconds",
            "Time to answer an authorization.",
            ["switch"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        # Accept to the last command sent: what the switch waits for, including the loop's
        # wait before the handler ran (the handler's own time is the histogram above).
        self.agi_answer_seconds = Histogram(
            "tollgate_agi_answer_seconds",
            "Time from accepting a FastAGI connection to sending its last command.",
            ["script"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.loop_lag = Histogram(
            "tollgate_loop_lag_seconds",
            "How much later than due the event loop woke a periodic timer (its stalls), by"
            " cause: waiting for a CPU, or running other work.",
            ["cause"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.ledger_repairs = Counter(
            "tollgate_ledger_repairs_total",
            "Accounts Redis was behind PostgreSQL on, repaired (settings, entries, rebuilt).",
            ["drift"],
            registry=self.registry,
        )
        for drift in Drift:  # present from the start, so the first repair is an increase
            self.ledger_repairs.labels(drift.value)
        self.finishes = Counter(
            "tollgate_call_finishes_total",
            "Calls finished, by result.",
            ["switch", "status"],
            registry=self.registry,
        )
        self.agi_events = Counter(
            "tollgate_agi_events_total",
            "FastAGI server events (malformed, budget_exceeded...).",
            ["kind", "script"],
            registry=self.registry,
        )
        self.swept = Counter(
            "tollgate_reservations_expired_total",
            "Reservations released by the sweeper (finish never came).",
            registry=self.registry,
        )

        self.swept_estimated = Counter(
            "tollgate_reservations_expired_estimated_total",
            "Expired calls charged from the controller's answer and their reservation "
            "(no outcome ever came).",
            registry=self.registry,
        )
        self.parked = Gauge(
            "tollgate_parked_outcomes",
            "Outcomes parked in AstDB at the last scan (finish reports not settled yet).",
            registry=self.registry,
        )
        self.parked_unsettled = Gauge(
            "tollgate_parked_outcomes_unsettled",
            "Parked outcomes the last scan could not settle (ledger unreachable).",
            registry=self.registry,
        )
        self.parked_settled = Counter(
            "tollgate_parked_outcomes_settled_total",
            "Parked outcomes collected from AstDB and settled.",
            registry=self.registry,
        )
        self.parked_scan_failures = Counter(
            "tollgate_parked_scan_failures_total",
            "Scans of AstDB's parked outcomes that failed (AMI unreachable or refused).",
            registry=self.registry,
        )
        self.outcome_lag = Gauge(
            "tollgate_outcome_log_lag_bytes",
            "Bytes of Asterisk's outcome log not settled yet at the last read.",
            registry=self.registry,
        )
        self.outcome_settled = Counter(
            "tollgate_outcome_log_settled_total",
            "Call outcomes read from the outcome log and settled (replays included).",
            registry=self.registry,
        )
        self.outcome_rejected = Counter(
            "tollgate_outcome_log_rejected_total",
            "Outcome log lines no ledger can accept, set aside in outcome_log_rejects.",
            registry=self.registry,
        )
        self.outcome_failures = Counter(
            "tollgate_outcome_log_failures_total",
            "Reads of the outcome log that stopped: file unreadable or a settlement failed.",
            registry=self.registry,
        )
        # Carriers' quality, per trunk (few labels: the operator's carriers, SIP codes):
        # ASR = answered / attempts, ACD = billsec / answered.
        self.carrier_attempts = Counter(
            "tollgate_carrier_attempts_total",
            "Calls offered to a carrier trunk (failed attempts and the one used).",
            ["trunk"],
            registry=self.registry,
        )
        self.carrier_answered = Counter(
            "tollgate_carrier_answered_total",
            "Calls a carrier trunk answered.",
            ["trunk"],
            registry=self.registry,
        )
        self.carrier_billsec = Counter(
            "tollgate_carrier_billsec_total",
            "Billed seconds of calls a carrier trunk answered.",
            ["trunk"],
            registry=self.registry,
        )
        self.carrier_failures = Counter(
            "tollgate_carrier_failures_total",
            "Failed attempts on a carrier trunk, by SIP code (the call moved on or ended).",
            ["trunk", "code"],
            registry=self.registry,
        )
        # Post-dial delay (INVITE to first ringing/progress, or to the answer), per trunk:
        # every attempt on its own trunk, the failed ones and the one the call used.
        self.carrier_pdd = Histogram(
            "tollgate_carrier_pdd_seconds",
            "Post-dial delay of attempts on a carrier trunk (INVITE to ringing or answer).",
            ["trunk"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0),
            registry=self.registry,
        )
        self.task_restarts = Counter(
            "tollgate_task_restarts_total",
            "Background tasks of tollgate serve that died and were restarted.",
            ["task"],
            registry=self.registry,
        )
        for task in ("sweeper", "sessions", "outcomes", "repair", "worker"):
            self.task_restarts.labels(task)
        self.session_events = Counter(
            "tollgate_session_events_total",
            "ARI session control events (renewal, hangup_suspended, reconciled...).",
            ["kind"],
            registry=self.registry,
        )
        self.sessions = Gauge(
            "tollgate_sessions_active",
            "Calls under ARI session control.",
            registry=self.registry,
        )

        self.open_calls = Gauge(
            "tollgate_open_calls",
            "Calls the ledger holds open (authorized, not finished).",
            registry=self.registry,
        )
        # Display only: money is computed in integer micro-units, never in these floats.
        self.reserved_credit = Gauge(
            "tollgate_reserved_credit",
            "Credit reserved by open calls, in currency units.",
            ["currency"],
            registry=self.registry,
        )

        self._initialise()

    def _initialise(self) -> None:
        for kind in AGI_EVENT_KINDS:
            for script in AGI_SCRIPTS:
                self.agi_events.labels(kind, script)
        for switch in ("fastagi", "ari"):
            for reason in Reason:
                allow = reason in ALLOW_REASONS
                decision = Decision.ALLOW if allow else Decision.DENY
                self.authorizations.labels(switch, decision.value, reason.value)

    def carrier_outcome(self, outcome: Outcome) -> None:
        """A settled call routed over carriers: its failed attempts and the trunk it used,
        each attempt counted once (an unanswered last one is often among the failed)."""
        for trunk, code, pdd in attempt_pdds(outcome.attempts):
            self.carrier_attempts.labels(trunk).inc()
            self.carrier_failures.labels(trunk, code or "none").inc()
            if pdd is not None:
                self.carrier_pdd.labels(trunk).observe(pdd / 1000)
        if not outcome.endpoint:
            return
        if outcome.answered:
            self.carrier_answered.labels(outcome.endpoint).inc()
            self.carrier_billsec.labels(outcome.endpoint).inc(outcome.billsec)
        if final_listed(outcome.attempts, outcome.endpoint, outcome.answered):
            return
        self.carrier_attempts.labels(outcome.endpoint).inc()
        pdd = pdd_of(outcome.timing)
        if pdd is not None:
            self.carrier_pdd.labels(outcome.endpoint).observe(pdd / 1000)

    def repaired(self, r: Repair) -> None:
        self.ledger_repairs.labels(r.drift.value).inc()

    def ledger_sample(self, calls: list[dict[str, str]]) -> None:
        self.open_calls.set(len(calls))
        totals: dict[str, int] = {}
        for call in calls:
            currency = call.get("currency") or "none"
            totals[currency] = totals.get(currency, 0) + int(call.get("reserved") or 0)
        self.reserved_credit.clear()
        for currency, micro in totals.items():
            self.reserved_credit.labels(currency).set(micro / 1_000_000)

    def outcome_scan(self, scan: LogScan | None) -> None:
        if scan is None or scan.failed:
            self.outcome_failures.inc()
        if scan is None:
            return
        self.outcome_lag.set(scan.lag_bytes)
        self.outcome_settled.inc(scan.settled)
        self.outcome_rejected.inc(scan.rejected)

    def parked_scan(self, scan: Scan | None) -> None:
        if scan is None:
            self.parked_scan_failures.inc()
            return
        self.parked.set(scan.seen)
        self.parked_unsettled.set(scan.failed)
        self.parked_settled.inc(scan.settled)

    def renewal(self, grant: Grant, seconds: float) -> None:
        self.authorizations.labels("ari", grant.decision.value, grant.reason).inc()
        self.authorize_seconds.labels("ari").observe(seconds)

    def session_event(self, kind: str) -> None:
        self.session_events.labels(kind).inc()

    def track_sessions(self, controller: SessionController) -> None:
        self.sessions.set_function(lambda: len(controller.sessions))

    def decided(self, d: Decided) -> None:
        if d.script == "authorize":
            self.authorizations.labels("fastagi", d.decision, d.reason).inc()
            self.authorize_seconds.labels("fastagi").observe(d.seconds)
        else:
            self.finishes.labels("fastagi", d.decision).inc()

    def loop_late(self, seconds: float, cause: str) -> None:
        self.loop_lag.labels(cause).observe(seconds)

    def agi_answered(self, script: str, seconds: float) -> None:
        shown = script if script in ("authorize", "incoming", "finish", "failover") else "other"
        self.agi_answer_seconds.labels(shown).observe(seconds)

    def agi_event(self, kind: str, script: str) -> None:
        if kind != "request":
            self.agi_events.labels(
                kind, script if script in ("authorize", "finish") else "other"
            ).inc()
