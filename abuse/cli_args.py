"""`tollgate abuse ...`: the arguments only; the handlers (abuse/cli.py) are imported when a
command runs, so that building tollgate's parser imports none of the detector's modules."""

from __future__ import annotations

import argparse

from core.cliout import NOW_HELP, whole_number
from core.lazy import Lazy

# abuse.findings.Status and abuse.detectors.DETECTORS (tests/unit/test_cli_startup.py checks)
STATUSES = ("open", "acknowledged", "lifted", "closed")
CLOSURES = ("proposed", "accepted", "rejected")
RULES = ("autodialing", "broadcasting", "forwarding", "premium", "revenue_share", "wangiri")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `abuse list|show|ack|lift|close|closure|deadlines|override|run` to tollgate's
    sub-commands."""
    ab = subparsers.add_parser("abuse", help="abuse and fraud findings, and the detector")
    sub = ab.add_subparsers(dest="abuse", required=True)

    ls = sub.add_parser("list", help="findings, newest first")
    ls.add_argument("--account")
    ls.add_argument("--status", choices=list(STATUSES))
    ls.add_argument("--rule", choices=sorted(RULES))
    ls.add_argument("--limit", type=whole_number, default=100)
    ls.add_argument(
        "--closure", choices=CLOSURES, help="only findings whose account closure is ..."
    )
    ls.set_defaults(run=Lazy("abuse.cli:cmd_list"))

    sh = sub.add_parser("show", help="one finding with its timeline")
    sh.add_argument("id", type=whole_number)
    sh.set_defaults(run=Lazy("abuse.cli:cmd_show"))

    cl = sub.add_parser(
        "closure", help="accept (closes the account) or reject a closure proposed on a repeat"
    )
    cl.add_argument("id", type=whole_number)
    cl.add_argument("decision", choices=("accept", "reject"))
    cl.add_argument("--reason", default="")
    cl.add_argument("--by", help="who (default: the login name)")
    cl.add_argument("--now", help=NOW_HELP)
    cl.set_defaults(run=Lazy("abuse.cli:cmd_closure"))

    dl = sub.add_parser(
        "deadlines", help="suspend warned accounts that went on past the deadline (once)"
    )
    dl.add_argument("--now", help=NOW_HELP)
    dl.set_defaults(run=Lazy("abuse.cli:cmd_deadlines"))

    for name, fn, text in (
        ("ack", Lazy("abuse.cli:cmd_ack"), "acknowledge: someone is looking into it"),
        (
            "lift",
            Lazy("abuse.cli:cmd_lift"),
            "lift: resumes the account if this finding suspended it",
        ),
        ("close", Lazy("abuse.cli:cmd_close"), "close: done with it (a suspension stays)"),
    ):
        x = sub.add_parser(name, help=text)
        x.add_argument("id", type=whole_number)
        x.add_argument("--reason", default="")
        x.add_argument("--by", help="who (default: the login name)")
        if name == "lift":
            x.add_argument(
                "--false-alarm",
                action="store_true",
                help="it was not abuse: no earlier episode for the repeat rule",
            )
        x.set_defaults(run=fn)

    ov = sub.add_parser("override", help="an account's thresholds for a rule")
    ov.add_argument("account")
    ov.add_argument("rule", choices=sorted(RULES))
    ov.add_argument("params", nargs="?", help="JSON, e.g. '{\"per_minute\": 20}'")
    ov.add_argument("--clear", action="store_true", help="back to the global thresholds")
    ov.set_defaults(run=Lazy("abuse.cli:cmd_override"))

    rn = sub.add_parser("run", help="run the detector (until SIGTERM, or --once)")
    rn.add_argument("--once", action="store_true", help="process what is there, then exit")
    rn.set_defaults(run=Lazy("abuse.cli:cmd_run"))
