"""Time bands of a rate deck: named sets of weekly windows ("mon-fri 08:00-18:00")."""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK_MIN = 7 * 24 * 60
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,\-*]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s*$")


class BandError(ValueError):
    """A band definition is wrong; `band` names it."""

    def __init__(self, band: str, why: str) -> None:
        super().__init__(f"band {band!r}: {why}")
        self.band = band
        self.why = why


@dataclass(frozen=True, slots=True)
class Band:
    name: str
    windows: tuple[str, ...]
    minutes: tuple[tuple[int, int], ...]  # [start, end) minute-of-week intervals, Monday 00:00 = 0


def parse_band(name: str, windows: list[str]) -> Band:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise BandError(name, "name must be a letter followed by letters, digits or '_'")
    if not windows:
        raise BandError(name, "has no windows")
    intervals: list[tuple[int, int]] = []
    for window in windows:
        intervals.extend(_parse_window(name, window))
    intervals.sort()
    for (_, end_a), (start_b, _) in itertools.pairwise(intervals):
        if start_b < end_a:
            raise BandError(name, "windows overlap each other")
    return Band(name, tuple(windows), tuple(intervals))


def _parse_window(band: str, window: str) -> list[tuple[int, int]]:
    if not isinstance(window, str):
        raise BandError(band, f"window {window!r} is not a string")
    m = _WINDOW.match(window.lower())
    if not m:
        raise BandError(band, f"window {window!r} is not 'DAYS HH:MM-HH:MM'")
    start, end = _minute(band, window, m["start"]), _minute(band, window, m["end"])
    if end <= start:
        raise BandError(band, f"window {window!r} ends before it starts (split it at midnight)")
    return [(day * 1440 + start, day * 1440 + end) for day in _days(band, window, m["days"])]


def _minute(band: str, window: str, hhmm: str) -> int:
    hh, mm = int(hhmm[:2]), int(hhmm[3:])
    if mm > 59 or hh > 24 or (hh == 24 and mm != 0):
        raise BandError(band, f"window {window!r} has a bad time {hhmm!r}")
    return hh * 60 + mm


def _days(band: str, window: str, spec: str) -> list[int]:
    if spec in ("*", "daily"):
        return list(range(7))
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo not in DAYS or (hi and hi not in DAYS):
            raise BandError(band, f"window {window!r} has unknown day(s) {part!r}")
        a, b = DAYS.index(lo), DAYS.index(hi or lo)
        if b < a:
            raise BandError(band, f"window {window!r} day range {part!r} runs backwards")
        out.extend(range(a, b + 1))
    return out


class BandClock:
    """Which band is in force at an instant, in the deck's time zone."""

    def __init__(self, bands: dict[str, Band], timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        points: list[tuple[int, int, str]] = []
        for band in bands.values():
            points.extend((start, end, band.name) for start, end in band.minutes)
        points.sort()
        for (_, end_a, a), (start_b, _, b) in itertools.pairwise(points):
            if start_b < end_a:
                raise BandError(b, f"overlaps band {a!r}")
        self._starts = [p[0] for p in points]
        self._points = points
        # Minutes of the week where the band in force may change.
        self._edges = sorted({0, WEEK_MIN} | {p[0] for p in points} | {p[1] for p in points})

    def band_at(self, instant: datetime) -> str | None:
        minute = self._week_minute(instant)
        i = bisect_right(self._starts, minute) - 1
        if i >= 0:
            start, end, name = self._points[i]
            if start <= minute < end:
                return name
        return None

    def next_change(self, instant: datetime) -> datetime | None:
        """First instant after `instant` where the band may change (None if there are no bands)."""
        if not self._points:
            return None
        local = instant.astimezone(self.zone)
        minute = self._week_minute(instant)
        edge = self._edges[bisect_right(self._edges, minute)] if minute < WEEK_MIN else WEEK_MIN
        monday = (local - timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        naive = monday.replace(tzinfo=None) + timedelta(minutes=edge)
        change = naive.replace(tzinfo=self.zone)
        if change <= instant:  # DST folds: never return a point that does not move forward
            change = instant + timedelta(minutes=1)
        return change

    def _week_minute(self, instant: datetime) -> int:
        local = instant.astimezone(self.zone)
        return local.weekday() * 1440 + local.hour * 60 + local.minute
