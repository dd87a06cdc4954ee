"""The cyclic garbage collector held off while batches are in flight.

A batch's events, plans, figures and checks (some sixty objects per CDR) live until the
batch is judged and acknowledged, then go by reference counting: they form no cycles. Left
on, the collector runs every 700 allocations, promotes them while they live and walks them
again in the oldest generation - a third of the detector's time under a flood, for
nothing. So the collector is off while any batch is in flight; young garbage (cycles made
meanwhile by anything else in the process) is still collected every `young_every`
batches, and everything once the last batch in flight is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_EVERY = 256  # batches between collections of the young generations while paused


class CollectorPause:
    def __init__(self, young_every: int = YOUNG_EVERY) -> None:
        self.young_every = young_every
        self._active = 0
        self._batches = 0
        self._resume = False  # the collector was on when the first batch began

    @contextmanager
    def paused(self) -> Iterator[None]:
        if self._active == 0:
            self._resume = gc.isenabled()
            gc.disable()
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            self._batches += 1
            if self._active == 0:
                if self._resume:
                    gc.enable()
            elif self._resume and self._batches % self.young_every == 0:
                gc.collect(1)
