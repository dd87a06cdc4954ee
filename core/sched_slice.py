"""A short CPU time slice for serve's event loop (Linux EEVDF scheduler, kernel 6.12+).

On a busy host serve waits in the run queue far longer than it runs (measured at 100
calls/s on 2 shared cores: ~10 s of waiting against ~1.8 s of CPU), and a lower nice value
does not shorten that wait: under EEVDF it buys a larger share of the CPU, not an earlier
turn. The slice a task asks for does: a task with a shorter slice gets an earlier deadline
and may preempt the running one when it wakes (PREEMPT_SHORT). serve's loop runs for well
under a millisecond per wake-up, so asking for a short slice costs the host nothing.

Asked with sched_setattr(2) (no wrapper in Python's os module): SCHED_OTHER at the thread's
current nice value, `sched_runtime` the slice. Kernels before 6.12 ignore it; no privilege
is needed. Per thread: set first thing, before any thread starts, so they inherit it."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import EnvReader

log = logging.getLogger("tollgate.sched_slice")

ENV_SLICE = "TOLLGATE_SCHED_SLICE_US"
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}  # sched_setattr, sched_getattr
_SCHED_OTHER = 0


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def _slice_us(text: str) -> int:
    value = int(text)
    if value != 0 and not 100 <= value <= 100_000:
        raise ValueError("must be 0 (the kernel's default) or 100..100000 microseconds")
    return value


@dataclass(frozen=True)
class SliceSettings:
    slice_us: int = 0  # 0: leave the kernel's default slice

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SliceSettings:
        """TOLLGATE_SCHED_SLICE_US: 100..100000; unset, empty or 0 keeps the default."""
        return cls(slice_us=EnvReader("TOLLGATE_", env).get("SCHED_SLICE_US", _slice_us, 0))


def _syscall(number: int, attr: _SchedAttr, *args: int) -> None:
    """sched_setattr(0, attr, flags) or sched_getattr(0, attr, size, flags): this thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, 0, ctypes.byref(attr), *args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def current_slice_us() -> int | None:
    """This thread's slice as the kernel reports it (None: not Linux, or not reported)."""
    numbers = _SYSCALLS.get(platform.machine()) if sys.platform == "linux" else None
    if numbers is None:
        return None
    attr = _SchedAttr()
    try:
        _syscall(numbers[1], attr, ctypes.sizeof(attr), 0)
    except OSError:
        return None
    return attr.sched_runtime // 1000 if attr.sched_policy == _SCHED_OTHER else None


def apply_slice(settings: SliceSettings) -> int | None:
    """Ask for the slice; the slice now reported in µs (the kernel clamps it), or None when
    it was left alone or could not be set (a warning: calls go on with the default)."""
    if not settings.slice_us:
        return None
    numbers = _SYSCALLS.get(platform.machine()) if sys.platform == "linux" else None
    if numbers is None:
        log.warning("%s not applied: only on Linux x86_64/aarch64", ENV_SLICE)
        return None
    attr = _SchedAttr(
        size=ctypes.sizeof(_SchedAttr),
        sched_policy=_SCHED_OTHER,
        sched_nice=os.getpriority(os.PRIO_PROCESS, 0),
        sched_runtime=settings.slice_us * 1000,
    )
    try:
        _syscall(numbers[0], attr, 0)
    except OSError as exc:
        log.warning("%s=%d not applied: %s", ENV_SLICE, settings.slice_us, exc)
        return None
    got = current_slice_us()
    if not got:
        log.warning(
            "%s=%d: this kernel keeps no slice per task (6.12+)", ENV_SLICE, settings.slice_us
        )
        return None
    return got
