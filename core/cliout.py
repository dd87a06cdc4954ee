"""What every `tollgate` sub-command shares: one JSON document on stdout, and domain errors
turned into one-line CLI errors with stable exit codes (2 bad input, 3 no rate, 1 a service
is unreachable), and the one reading of a time given on the command line. Packages that add
sub-commands import this, never tollgate.cli."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
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


NOW_HELP = "act as of this ISO 8601 instant, with a zone (default: now)"


def instant(text: str, option: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 date-time given as `option`, in UTC. Without a zone it is refused unless
    the option documents a zone for it (`zone`): an operator's local time silently read as
    UTC would shift billing by hours."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: not an ISO 8601 date-time: {text!r}") from None
    if at.tzinfo is None:
        if zone is None:
            raise CliError(f"{option}: give a zone (e.g. {text}+01:00 or {text}Z)")
        at = at.replace(tzinfo=zone)
    return at.astimezone(UTC)


def now_of(text: str | None, option: str = "--now") -> datetime:
    """The one instant a command acts at: `--now` (with a zone), else the wall clock, read
    here at the edge and passed down; nothing below reads the clock."""
    return instant(text, option) if text else datetime.now(UTC)
