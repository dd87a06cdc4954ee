"""A progress bar on stderr for long CLI steps, shown only on a terminal: redirected
output (a file, a pipe, cron) stays one JSON document with nothing interleaved."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

WIDTH = 30


class ProgressBar:
    """Call it with (done, total); use it as a context manager to end the line."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        share = min(1.0, done / total) if total > 0 else 1.0
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%} {done:,}/{total:,}")
        self.stream.flush()
        self._shown = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
