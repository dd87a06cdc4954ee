"""`tollgate notify ...`: the arguments only; the handlers (notify/cli.py) are imported when
a command runs."""

from __future__ import annotations

import argparse

from core.cliout import NOW_HELP, whole_number
from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    n = subparsers.add_parser("notify", help="notices to customers: e-mail, webhooks")
    sub = n.add_subparsers(dest="notify", required=True)

    rn = sub.add_parser("run", help="find balance threshold crossings and deliver due notices")
    rn.add_argument("--once", action="store_true", help="one pass, then exit")
    rn.add_argument("--now", help=NOW_HELP + "; implies --once")
    rn.set_defaults(run=Lazy("notify.cli:cmd_run"))

    ls = sub.add_parser("list", help="notices, newest first")
    ls.add_argument("--account")
    ls.add_argument("--status", choices=["pending", "sent", "failed", "opted_out"])
    ls.add_argument("--limit", type=whole_number, default=100)
    ls.set_defaults(run=Lazy("notify.cli:cmd_list"))

    st = sub.add_parser("set", help="an account's contacts and preferences (replaces them)")
    st.add_argument("account")
    st.add_argument("--language", default="", help="pl or en (default: TOLLGATE_NOTIFY_LANGUAGE)")
    st.add_argument("--email", default="")
    st.add_argument("--webhook", default="", help="http(s) URL notices are POSTed to")
    st.add_argument(
        "--thresholds", default="", help="low-balance amounts, e.g. '10.00,0' (default: setting)"
    )
    st.add_argument("--opt-out", action="append", default=[], metavar="KIND")
    st.add_argument("--now", help=NOW_HELP)
    st.set_defaults(run=Lazy("notify.cli:cmd_set"))

    sh = sub.add_parser("show", help="an account's contacts and preferences")
    sh.add_argument("account")
    sh.set_defaults(run=Lazy("notify.cli:cmd_show"))
