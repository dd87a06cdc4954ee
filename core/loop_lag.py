"""How late the event loop runs what is due: every FastAGI answer waits behind a stall of
the loop (a burst of settlements, a sweep, a collection), so its distribution is the part
of the post-dial delay a process adds on its own."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.env import SettingsError

ENV_INTERVAL = "TOLLGATE_LOOP_LAG_INTERVAL_MS"


@dataclass(frozen=True)
class LoopLagSettings:
    interval_s: float = 0.02  # 0: not watched

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoopLagSettings:
        raw = (os.environ if env is None else env).get(ENV_INTERVAL, "").strip() or "20"
        if not raw.isdigit() or int(raw) > 10_000:
            raise SettingsError(ENV_INTERVAL, f"not 0..10000 milliseconds: {raw!r}")
        return cls(interval_s=int(raw) / 1000)


async def watch_lag(interval_s: float, observe: Callable[[float], None]) -> None:
    """Sleep `interval_s` over and over and observe how much later than asked each wake-up
    came. Timed with time.monotonic: uvloop's own clock has millisecond steps."""
    while True:
        asked = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, time.monotonic() - asked))
