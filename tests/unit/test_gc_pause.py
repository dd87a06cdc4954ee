"""The abuse detector holds the cyclic collector off while batches are in flight: off from
the first batch to the end of the last one in flight, back on after, and left alone when
something else had turned it off."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from abuse.gc_pause import CollectorPause


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def test_off_while_any_batch_is_in_flight(collector_on: None) -> None:
    pause = CollectorPause()
    first, second = pause.paused(), pause.paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second batch is still in flight
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_back_on_when_a_batch_fails(collector_on: None) -> None:
    pause = CollectorPause()
    with pytest.raises(RuntimeError), pause.paused():
        raise RuntimeError("redis went away")
    assert gc.isenabled()


class Node:
    other: Node | None = None


def test_young_garbage_is_collected_while_batches_overlap(collector_on: None) -> None:
    pause = CollectorPause(young_every=2)
    held = pause.paused()
    held.__enter__()
    node = Node()
    node.other = node  # a cycle: only the collector frees it
    gone = weakref.ref(node)
    del node
    with pause.paused():
        pass
    assert gone() is not None
    with pause.paused():
        pass
    assert gone() is None  # the second batch ended: the young generations were collected
    assert not gc.isenabled()
    held.__exit__(None, None, None)
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with CollectorPause().paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()
