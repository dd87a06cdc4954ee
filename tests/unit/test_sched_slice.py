"""serve's CPU slice: the setting, and that the kernel is asked for it (where it listens)."""

from __future__ import annotations

import sys
import threading

import pytest

from core.env import SettingsError
from core.sched_slice import SliceSettings, apply_slice, current_slice_us


def test_settings_default_keeps_the_kernels_slice() -> None:
    assert SliceSettings.from_env({}).slice_us == 0
    assert SliceSettings.from_env({"TOLLGATE_SCHED_SLICE_US": ""}).slice_us == 0
    assert SliceSettings.from_env({"TOLLGATE_SCHED_SLICE_US": "300"}).slice_us == 300
    assert apply_slice(SliceSettings()) is None


@pytest.mark.parametrize("raw", ["50", "-300", "100001", "0.3", "fast"])
def test_settings_refuse_a_slice_the_kernel_would_not_take(raw: str) -> None:
    with pytest.raises(SettingsError, match="TOLLGATE_SCHED_SLICE_US"):
        SliceSettings.from_env({"TOLLGATE_SCHED_SLICE_US": raw})


@pytest.mark.skipif(sys.platform != "linux", reason="sched_setattr is Linux's")
def test_the_slice_is_set_for_the_thread_and_inherited_by_its_threads() -> None:
    """Run in a thread of its own (the slice is per thread): the test process keeps its own.
    Kernels before 6.12 report no custom slice; then only "no error" is checked."""
    seen: dict[str, int | None] = {}

    def child() -> None:
        seen["child"] = current_slice_us()

    def main() -> None:
        before = current_slice_us()
        seen["applied"] = apply_slice(SliceSettings(slice_us=300))
        seen["before"] = before
        t = threading.Thread(target=child)
        t.start()
        t.join()

    t = threading.Thread(target=main)
    t.start()
    t.join()
    if seen["before"] is None:
        pytest.skip("this kernel reports no slice")
    assert seen["applied"] == 300
    assert seen["child"] == 300
    assert current_slice_us() == seen["before"]  # this thread was left alone
