"""What every `tollgate` sub-command shares: one JSON document on stdout, and domain errors
turned into one-line CLI errors with stable exit codes (2 bad input, 3 no rate, 1 a service
is unreachable). Packages that add sub-commands import this, never tollgate.cli."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.plain import NumberError, parse_whole

EXIT_UNAVAILABLE = 1
EXIT_BAD_INPUT = 2
EXIT_NO_RATE = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


@contextmanager
def bad_input(*errors: type[Exception]) -> Iterator[None]:
    """These domain errors become the CLI's bad-input error (exit 2, one line)."""
    try:
        yield
    except errors as exc:
        raise CliError(str(exc)) from None


def whole_number(text: str) -> int:
    """argparse type for counts, seconds and ids: ASCII digits only (int() also takes
    '1_000' and other scripts' digits)."""
    try:
        return parse_whole(text, low=-(10**9), high=10**9)
    except NumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
