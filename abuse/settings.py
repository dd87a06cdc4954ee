"""Settings of the abuse detector, from TOLLGATE_ABUSE_* environment variables or a mapping.

Actions are graded (record < alert < warn < suspend, each including the ones before) and
chosen per severity; a warning gives the customer a deadline (terms §5.1), after which the
behaviour continuing suspends the account, and a repeat within `repeat_window_days` proposes
closing the account to an operator; rule thresholds given here replace the code's defaults
for every account (per-account overrides live in PostgreSQL, table abuse_overrides)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from abuse.detectors import DETECTORS
from abuse.params import BadParams, RuleParams
from abuse.signals import Severity
from runtime.settings import SettingsError

T = TypeVar("T")


class Action(StrEnum):
    RECORD = "record"  # a finding row and a metric
    ALERT = "alert"  # ... and a webhook POST
    WARN = "warn"  # ... and a warning to the customer with a deadline to stop
    SUSPEND = "suspend"  # ... and the account's outbound calls stopped

    @property
    def rank(self) -> int:
        return list(Action).index(self)


DEFAULT_ACTIONS: Mapping[Severity, Action] = MappingProxyType(
    {
        Severity.INFO: Action.RECORD,
        Severity.WARNING: Action.WARN,
        Severity.CRITICAL: Action.SUSPEND,
    }
)


def _consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class AbuseSettings:
    group: str = "abuse"
    consumer: str = field(default_factory=_consumer)
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30_000  # pending this long at another consumer: it is dead
    webhook_url: str = ""
    webhook_timeout_s: float = 2.0
    actions: Mapping[Severity, Action] = field(default_factory=lambda: DEFAULT_ACTIONS)
    rules: Mapping[str, RuleParams] = field(default_factory=dict)  # global thresholds
    overrides_refresh_s: float = 30.0  # how stale per-account overrides may be
    evidence_refresh_s: float = 60.0  # a finding that fires again is re-written this often
    seen_keep_s: int = 2 * 86400  # how long an event id is remembered (re-delivery guard)
    inbound_stream: bool = True  # also read {prefix}:inbound (Wangiri)
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    warn_deadline_h: float = 72.0  # the customer's time to stop after a warning
    repeat_window_days: int = 180  # abuse again within this after a warning: closure proposed

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.block_ms <= 0:
            raise SettingsError("TOLLGATE_ABUSE_BATCH_SIZE", "batch size and block time > 0")
        if self.webhook_timeout_s <= 0:
            raise SettingsError("TOLLGATE_ABUSE_WEBHOOK_TIMEOUT_S", "must be > 0")
        if self.warn_deadline_h <= 0:
            raise SettingsError("TOLLGATE_ABUSE_WARN_DEADLINE_H", "must be > 0")
        if self.repeat_window_days < 0:
            raise SettingsError("TOLLGATE_ABUSE_REPEAT_WINDOW_DAYS", "must be >= 0")

    def params(self, rule: str) -> RuleParams:
        found = self.rules.get(rule)
        return found if found is not None else DETECTORS[rule].defaults()

    def action_for(self, severity: Severity) -> Action:
        return self.actions.get(severity, DEFAULT_ACTIONS[severity])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AbuseSettings:
        env = os.environ if env is None else env
        prefix = "TOLLGATE_ABUSE_"
        return cls.from_dict(
            {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix) and v},
            source=prefix,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> AbuseSettings:
        """Keys are the field names; values are strings (environment) or native values.
        `actions`: "info=record,warning=warn,critical=suspend" or a mapping; `rules`: JSON
        text or a mapping {rule: {threshold: value}}."""

        def name(key: str) -> str:
            return f"{source}{key.upper()}" if source else key

        def get(key: str, conv: Callable[[Any], T], default: T) -> T:
            if key not in data:
                return default
            try:
                return conv(data[key])
            except (ValueError, TypeError) as exc:
                raise SettingsError(name(key), f"bad value {data[key]!r} ({exc})") from None

        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise SettingsError(name(sorted(unknown)[0]), "not a setting of the abuse detector")
        base = cls()
        try:
            rules = _rules(data.get("rules", {}))
        except ValueError as exc:  # BadParams, or JSON that does not parse
            raise SettingsError(name("rules"), str(exc)) from None
        return cls(
            group=get("group", str, base.group),
            consumer=get("consumer", str, base.consumer),
            batch_size=get("batch_size", int, base.batch_size),
            block_ms=get("block_ms", int, base.block_ms),
            claim_idle_ms=get("claim_idle_ms", int, base.claim_idle_ms),
            webhook_url=get("webhook_url", str, base.webhook_url),
            webhook_timeout_s=get("webhook_timeout_s", float, base.webhook_timeout_s),
            actions=get("actions", _actions, base.actions),
            rules=rules,
            overrides_refresh_s=get("overrides_refresh_s", float, base.overrides_refresh_s),
            evidence_refresh_s=get("evidence_refresh_s", float, base.evidence_refresh_s),
            seen_keep_s=get("seen_keep_s", int, base.seen_keep_s),
            inbound_stream=get("inbound_stream", _flag, base.inbound_stream),
            warn_deadline_h=get("warn_deadline_h", float, base.warn_deadline_h),
            repeat_window_days=get("repeat_window_days", int, base.repeat_window_days),
        )


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "yes", "true", "on"):
        return True
    if text in ("0", "no", "false", "off"):
        return False
    raise ValueError("yes or no expected")


def _actions(value: Any) -> Mapping[Severity, Action]:
    pairs = (
        value.items()
        if isinstance(value, Mapping)
        else (item.split("=", 1) for item in str(value).split(",") if item.strip())
    )
    out = dict(DEFAULT_ACTIONS)
    for severity, action in pairs:
        out[Severity(str(severity).strip())] = Action(str(action).strip())
    return MappingProxyType(out)


def _rules(value: Any) -> dict[str, RuleParams]:
    raw = json.loads(value) if isinstance(value, str) else value
    if not isinstance(raw, Mapping):
        raise BadParams("rules", "*", "a mapping {rule: {threshold: value}} expected")
    out: dict[str, RuleParams] = {}
    for rule, params in raw.items():
        if rule not in DETECTORS:
            raise BadParams(str(rule), "*", f"unknown rule; one of {', '.join(DETECTORS)}")
        if not isinstance(params, Mapping):
            raise BadParams(rule, "*", "a mapping of thresholds expected")
        out[rule] = DETECTORS[rule].defaults().merged(params, rule)
    return out
