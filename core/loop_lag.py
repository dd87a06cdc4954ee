"""How late the event loop runs what is due: every FastAGI answer waits behind a stall of
the loop, so its distribution is the part of the post-dial delay a process adds on its own.

Each late wake-up is put down to one of two causes, from this thread's scheduler statistics
(/proc/thread-self/schedstat: time run on a CPU): "running" when the loop's own work (a
burst of settlements, a sweep, a collection) explains most of the lateness, "waiting" when
most of it went waiting for a CPU (a busy host), "unknown" where the statistics cannot be
read."""

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


def _ran_s() -> float | None:
    """Seconds this thread has run on a CPU so far (None: not readable)."""
    try:
        return int(_SCHEDSTAT.read_bytes().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cause(late_s: float, ran_s: float | None, interval_s: float) -> str:
    """Why a wake-up `interval_s` after the last one came `late_s` late, given how long the
    thread ran meanwhile: with a CPU always free it would have been late by what it ran
    beyond the interval; the rest of the lateness was spent waiting for one."""
    if ran_s is None:
        return "unknown"
    return "running" if ran_s - interval_s >= late_s / 2 else "waiting"


async def watch_lag(interval_s: float, observe: Observe) -> None:
    """Sleep `interval_s` over and over and observe how much later than asked each wake-up
    came, and why. Timed with time.monotonic: uvloop's own clock has millisecond steps."""
    while True:
        before = _ran_s()
        asked = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        late = max(0.0, time.monotonic() - asked)
        after = _ran_s()
        ran = after - before if before is not None and after is not None else None
        observe(late, cause(late, ran, interval_s))
