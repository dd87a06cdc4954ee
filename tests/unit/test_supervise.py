"""Background tasks of `tollgate serve` never die silently (issue 11, item 2)."""

from __future__ import annotations

import asyncio

from tollgate.metrics import Metrics
from tollgate.serve import supervise


async def test_a_task_that_dies_is_restarted_and_counted() -> None:
    metrics = Metrics()
    runs: list[int] = []
    second_run = asyncio.Event()

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("Redis went away")  # what killed SessionController.run()
        second_run.set()
        await asyncio.Event().wait()  # healthy from now on

    task = asyncio.create_task(supervise("sessions", work, metrics))
    try:
        await asyncio.wait_for(second_run.wait(), 10)
    finally:
        task.cancel()
    assert runs == [0, 1]
    restarts = metrics.registry.get_sample_value(
        "tollgate_task_restarts_total", {"task": "sessions"}
    )
    assert restarts == 1
    # known tasks are exported at 0 before their first restart, so the first one is seen
    assert (
        metrics.registry.get_sample_value("tollgate_task_restarts_total", {"task": "outcomes"}) == 0
    )
