"""`--now` and the other instants given on the command line: one reading (core.cliout)."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.cliout import EXIT_BAD_INPUT, CliError, instant, now_of
from core.lazy import Lazy

WARSAW = ZoneInfo("Europe/Warsaw")


def test_an_instant_with_a_zone_is_read_as_given_and_returned_in_utc() -> None:
    at = instant("2026-03-29T01:30:00+01:00", "--now")
    assert at == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert at.tzinfo is UTC
    assert instant("2026-11-20T12:00Z", "--now") == datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_a_time_without_a_zone_is_refused_naming_the_option() -> None:
    with pytest.raises(CliError) as err:
        instant("2026-11-20T12:00", "--now")
    assert str(err.value) == "--now: give a zone (e.g. 2026-11-20T12:00+01:00 or 2026-11-20T12:00Z)"
    assert err.value.code == EXIT_BAD_INPUT
    with pytest.raises(CliError, match=r"^--now: give a zone"):
        now_of("2026-11-20T12:00")


def test_an_option_that_documents_a_zone_reads_a_wall_clock_time_in_it() -> None:
    # Warsaw in winter is UTC+1: the operator's 12:00 is 11:00 UTC
    at = instant("2026-11-20T12:00", "--start", WARSAW)
    assert at == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert instant("2026-11-20T12:00+00:00", "--start", WARSAW).hour == 12


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00Z", "20.11.2026 12:00"])
def test_what_is_not_an_iso_date_time_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(CliError) as err:
        instant(text, "--at")
    assert str(err.value) == f"--at: not an ISO 8601 date-time: {text!r}"


def test_no_now_is_the_wall_clock_in_utc() -> None:
    before = datetime.now(UTC)
    at = now_of(None)
    assert at.tzinfo is UTC and before <= at <= datetime.now(UTC)
    assert now_of("") >= before


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in action.choices.values():
            yield from _leaves(child)


def test_every_handler_that_reads_now_has_a_now_option() -> None:
    from tollgate.cli import build_parser

    reading = []
    for leaf in _leaves(build_parser()):
        run = leaf._defaults.get("run")
        handler = run.resolve() if isinstance(run, Lazy) else run
        if handler is not None and "args.now" in inspect.getsource(handler):
            reading.append(leaf.prog)
            assert "now" in {a.dest for a in leaf._actions}, leaf.prog
    assert len(reading) > 20  # billing, customers, numbering, notify, complaints, scheduler...
