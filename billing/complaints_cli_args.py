"""`tollgate complaint ...`: the arguments only; the handlers (billing/complaints_cli.py) are
imported when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import NOW_HELP, whole_number
from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = subparsers.add_parser("complaint", help="the complaints register (terms §12)")
    sub = c.add_subparsers(dest="complaint", required=True)

    f = sub.add_parser("file", help="register a complaint (the filing instant is --now)")
    f.add_argument("--account", required=True)
    f.add_argument("--event-at", required=True, help="when it happened, ISO 8601")
    f.add_argument("--description", required=True)
    f.add_argument("--call", action="append", default=[], metavar="SWITCH/CALL_ID")
    f.add_argument("--invoice", help="a document's number")
    f.add_argument("--period", help="YYYY-MM")
    f.add_argument("--requested", default="0", help="the credit asked for, e.g. 12.50")
    f.add_argument("--now", help=NOW_HELP)
    f.set_defaults(run=Lazy("billing.complaints_cli:cmd_file"))

    ls = sub.add_parser("list")
    ls.add_argument("--account")
    ls.add_argument(
        "--status", choices=["filed", "acknowledged", "accepted", "rejected", "deemed_accepted"]
    )
    ls.set_defaults(run=Lazy("billing.complaints_cli:cmd_list"))

    sh = sub.add_parser("show")
    sh.add_argument("id", type=whole_number)
    sh.set_defaults(run=Lazy("billing.complaints_cli:cmd_show"))

    ak = sub.add_parser("ack", help="acknowledge receipt")
    ak.add_argument("id", type=whole_number)
    ak.add_argument("--now", help=NOW_HELP)
    ak.set_defaults(run=Lazy("billing.complaints_cli:cmd_ack"))

    an = sub.add_parser("answer", help="accept (crediting) or reject, with the reasons")
    an.add_argument("id", type=whole_number)
    an.add_argument("--decision", choices=["accept", "reject"], required=True)
    an.add_argument("--text", required=True, help="the reasons (§12.5)")
    an.add_argument("--credit", help="what an acceptance credits (default: what was asked)")
    an.add_argument("--now", help=NOW_HELP)
    an.set_defaults(run=Lazy("billing.complaints_cli:cmd_answer"))

    st = sub.add_parser("settle", help="deem accepted (and credit) what is past its deadline")
    st.add_argument("--now", help=NOW_HELP)
    st.set_defaults(run=Lazy("billing.complaints_cli:cmd_settle"))
