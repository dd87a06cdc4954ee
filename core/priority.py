"""The CPU priority (nice value) of a process on the calls' path.

On a busy switch host, `tollgate serve` waits for a CPU far longer than it runs: measured at
100 calls/s on a 2-core host shared with Asterisk, its event loop spent about 3x its own CPU
time in the run queue, and every wait lands on a caller's post-dial delay. A lower nice
value (TOLLGATE_NICE=-10) gives it the CPU first; it uses little of it (about 1-1.5 ms a call).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import EnvReader

log = logging.getLogger("tollgate.priority")

ENV_NICE = "TOLLGATE_NICE"


def _nice(text: str) -> int:
    value = int(text)
    if not -20 <= value <= 19:
        raise ValueError("must be -20..19")
    return value


@dataclass(frozen=True)
class PrioritySettings:
    nice: int | None = None  # None: keep the priority the process was started with

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrioritySettings:
        """TOLLGATE_NICE: -20..19; unset or empty keeps the inherited priority."""
        return cls(nice=EnvReader("TOLLGATE_", env).get("NICE", _nice, None))


def apply_priority(settings: PrioritySettings) -> int | None:
    """Set this process's nice value; the value now in force, or None if it was left alone.

    Call it before any thread starts: on Linux the value is per thread, and threads started
    later (and child processes) inherit it. Without the right to raise priority
    (CAP_SYS_NICE), the process goes on at its inherited priority, with a warning: a slower
    post-dial delay is better than refusing every call."""
    if settings.nice is None:
        return None
    try:
        os.setpriority(os.PRIO_PROCESS, 0, settings.nice)
    except PermissionError:
        log.warning(
            "%s=%d not applied: raising priority needs CAP_SYS_NICE; running at nice %d",
            ENV_NICE,
            settings.nice,
            os.getpriority(os.PRIO_PROCESS, 0),
        )
        return None
    return os.getpriority(os.PRIO_PROCESS, 0)
