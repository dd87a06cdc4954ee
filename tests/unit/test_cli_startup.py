"""`tollgate --help` and simple commands import only what they use; every handler the parser
names exists; the parser's literal choices match the enums they stand for."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from core.lazy import Lazy

HEAVY = ("asyncpg", "redis", "aiohttp", "prometheus_client", "runtime.services", "abuse.runner")


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def handlers(parser: argparse.ArgumentParser) -> Iterator[Any]:
    for key in ("run", "sync"):
        if key in parser._defaults:
            yield parser._defaults[key]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from handlers(sub)


def test_building_the_parser_imports_no_client_library() -> None:
    loaded = imported_after("from tollgate.cli import build_parser\nbuild_parser()")
    assert not [m for m in HEAVY if m in loaded]


def test_classify_imports_no_client_library() -> None:
    code = (
        "import contextlib, io\nfrom tollgate.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    main(['classify', '0601234567'])"
    )
    loaded = imported_after(code)
    assert "rating.numbers" in loaded  # the command ran
    assert not [m for m in HEAVY if m in loaded]


def test_every_handler_resolves() -> None:
    from tollgate.cli import build_parser

    found = list(handlers(build_parser()))
    assert len(found) > 30
    for h in found:
        assert isinstance(h, Lazy), h
        assert callable(h.resolve()), h.ref


def test_literal_choices_match_the_enums() -> None:
    from abuse import cli_args as abuse_args
    from abuse.detectors import DETECTORS
    from abuse.findings import Status
    from panel_api import cli_args as panel_args
    from panel_api.tokens import CUSTOMER_DAYS, Role
    from rating.accounts import AccountKind
    from tollgate import cli

    assert set(abuse_args.RULES) == set(DETECTORS)
    assert tuple(s.value for s in Status) == abuse_args.STATUSES
    assert tuple(r.value for r in Role) == panel_args.ROLES
    assert CUSTOMER_DAYS == panel_args.CUSTOMER_DAYS
    assert tuple(k.value for k in AccountKind) == cli.ACCOUNT_KINDS


def test_errors_of_lazily_imported_modules_keep_their_exit_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from tollgate.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["classify", "12"])  # InvalidNumber, from a module the parser never imported
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("tollgate: ")
    with pytest.raises(SystemExit) as exit_:
        main(
            ["rate", "--deck", str(tmp_path / "none.toml"), "--to", "0601234567", "--seconds", "1"]
        )
    assert exit_.value.code == 2
    assert "none.toml: file not found" in capsys.readouterr().err


def test_a_lazy_handler_must_name_module_and_function() -> None:
    with pytest.raises(ValueError):
        Lazy("tollgate.commands")
