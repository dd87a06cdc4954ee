"""The loop-lag watch: what it observes when the loop is held, and its setting."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from core.env import SettingsError
from core.loop_lag import LoopLagSettings, cause, watch_lag


async def test_a_held_loop_is_observed_as_lag() -> None:
    seen: list[float] = []
    causes: list[str] = []

    def observe(late: float, why: str) -> None:
        seen.append(late)
        causes.append(why)

    task = asyncio.create_task(watch_lag(0.01, observe))
    await asyncio.sleep(0.05)
    held_until = time.thread_time() + 0.3
    while time.thread_time() < held_until:  # holds the loop, as a long burst of work would
        pass
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen and min(seen) >= 0
    assert max(seen) >= 0.25
    assert set(causes) <= {"running", "waiting", "unknown"}


def test_lateness_is_put_down_to_waiting_for_a_cpu_or_to_the_loops_work() -> None:
    # 10 ms late, 8 ms of it in the run queue: a busy host
    assert cause(0.010, 0.008) == "waiting"
    # 1 ms in the run queue: the loop was running something else when the timer was due
    assert cause(0.010, 0.001) == "running"
    assert cause(0.010, None) == "unknown"


def test_settings_read_milliseconds_zero_turns_it_off() -> None:
    assert LoopLagSettings.from_env({}).interval_s == 0.02
    assert LoopLagSettings.from_env({"TOLLGATE_LOOP_LAG_INTERVAL_MS": "5"}).interval_s == 0.005
    assert LoopLagSettings.from_env({"TOLLGATE_LOOP_LAG_INTERVAL_MS": "0"}).interval_s == 0


@pytest.mark.parametrize("raw", ["-1", "0.5", "ten", "10001"])
def test_settings_refuse_what_is_not_milliseconds(raw: str) -> None:
    with pytest.raises(SettingsError, match="TOLLGATE_LOOP_LAG_INTERVAL_MS"):
        LoopLagSettings.from_env({"TOLLGATE_LOOP_LAG_INTERVAL_MS": raw})
