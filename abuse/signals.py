"""What a detector reports: a Signal, graded by Severity, with the figures behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

Figure = int | float | str


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def grade(value: float, warning: float, critical: float) -> Severity | None:
    """Severity of `value` against thresholds reached from below (0 disables a level)."""
    if critical > 0 and value >= critical:
        return Severity.CRITICAL
    if warning > 0 and value >= warning:
        return Severity.WARNING
    return None


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where the calls behind a signal are: members of a window (sorted set) between two
    scores; each member starts with the call id (`call_id|...`)."""

    key: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Signal:
    rule: str
    account: str
    subject: str  # what inside the rule fired (a signal name, a caller id, a range)
    severity: Severity
    at_ms: int  # the event that fired it
    figures: Mapping[str, Figure]
    threshold: Mapping[str, Figure]
    window_s: int
    call_ids: tuple[str, ...] = ()
    lookup: Lookup | None = None
    detail: Mapping[str, Figure | list[str]] = field(default_factory=dict)

    @property
    def window_key(self) -> str:
        """One finding per account, rule and subject per UTC day of the firing event."""
        return datetime.fromtimestamp(self.at_ms / 1000, UTC).date().isoformat()
