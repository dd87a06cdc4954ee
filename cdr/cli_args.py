"""`tollgate cdr ...`: the command group and `cdr reconcile`'s arguments; the handler
(cdr/reconcile.py) is imported when the command runs."""

from __future__ import annotations

import argparse

from core.lazy import Lazy


def cdr_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The `tollgate cdr ...` command group, shared by the CDR tools (made on first use)."""
    parser = subparsers.choices.get("cdr")
    if parser is None:
        parser = subparsers.add_parser("cdr", help="CDR tools: reconciliation, re-rating")
        return parser.add_subparsers(dest="cdr", required=True)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the 'cdr' command has no sub-commands")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `cdr reconcile` to tollgate's sub-commands."""
    rc = cdr_group(subparsers).add_parser(
        "reconcile", help="compare tollgate's CDRs with Asterisk's cdr_custom CSV"
    )
    rc.add_argument("--period", help="YYYY-MM (a month in --tz)")
    rc.add_argument("--from", dest="start", help="ISO 8601; no zone = --tz")
    rc.add_argument("--to", dest="end", help="ISO 8601, exclusive; no zone = --tz")
    rc.add_argument("--asterisk-csv", required=True, help="Asterisk's cdr_custom CSV file")
    rc.add_argument("--tz", default="UTC", help="zone of --period/--from/--to (default UTC)")
    rc.add_argument(
        "--asterisk-tz", default="UTC", help="zone of the times Asterisk wrote (its host's)"
    )
    rc.add_argument("--switch", help="only tollgate CDRs of this switch host")
    rc.set_defaults(run=Lazy("cdr.reconcile:cmd_cdr_reconcile"))
