"""How late the event loop runs what is due: every FastAGI answer waits behind a stall of
the loop, so its distribution is the part of the post-dial delay a process adds on its own.

Each late wake-up is put down to one of two causes, from this thread's scheduler statistics
(/proc/thread-self/schedstat: time waited in the run queue): "waiting" when at least half
of the lateness went waiting for a CPU (a busy host), else "running" (the loop's own work:
a burst of settlements, a sweep, a collection); "unknown" where they cannot be read."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.env import SettingsError

ENV_INTERVAL = "TOLLGATE_LOOP_LAG_INTERVAL_MS"
_SCHEDSTAT = Path("/proc/thread-self/schedstat")

Observe = Callable[[float, str], None]  # (seconds late, cause)


@dataclass(frozen=True)
class LoopLagSettings:
    interval_s: float = 0.02  # 0: not watched

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoopLagSettings:
        raw = (os.environ if env is None else env).get(ENV_INTERVAL, "").strip() or "20"
        if not raw.isdigit() or int(raw) > 10_000:
            raise SettingsError(ENV_INTERVAL, f"not 0..10000 milliseconds: {raw!r}")
        return cls(interval_s=int(raw) / 1000)


def _waited_s() -> float | None:
    """Seconds this thread has waited in the run queue so far (None: not readable)."""
    try:
        return int(_SCHEDSTAT.read_bytes().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cause(late_s: float, waited_s: float | None) -> str:
    """Why a wake-up came `late_s` late, given how long the thread waited for a CPU over the
    same stretch: "waiting" when that explains at least half of it, else "running"."""
    if waited_s is None:
        return "unknown"
    return "waiting" if waited_s >= late_s / 2 else "running"


async def watch_lag(interval_s: float, observe: Observe) -> None:
    """Sleep `interval_s` over and over and observe how much later than asked each wake-up
    came, and why. Timed with time.monotonic: uvloop's own clock has millisecond steps."""
    while True:
        before = _waited_s()
        asked = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        late = max(0.0, time.monotonic() - asked)
        after = _waited_s()
        waited = after - before if before is not None and after is not None else None
        observe(late, cause(late, waited))


def start_watch(observe: Observe) -> asyncio.Task[None] | None:
    """The watch as configured (`TOLLGATE_LOOP_LAG_INTERVAL_MS`), as a task to cancel at
    shutdown; None when it is switched off."""
    interval_s = LoopLagSettings.from_env().interval_s
    return asyncio.create_task(watch_lag(interval_s, observe)) if interval_s else None
