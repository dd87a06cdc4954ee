"""`tollgate carrier ...` and `tollgate routes`: the arguments only; the handlers
(tollgate/carrier_cmd.py) are imported when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import whole_number
from core.lazy import Lazy

NOW_HELP = "act as of this ISO 8601 time (default: now)"


def _bool(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"yes or no, not {text!r}")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `carrier create|update|disable|list|show|sync` and `routes`."""
    c = subparsers.add_parser("carrier", help="carriers: buy-rate decks, trunks, capacity")
    sub = c.add_subparsers(dest="carrier_cmd", required=True)

    cr = sub.add_parser("create", help="add a carrier priced by a buy-rate deck")
    cr.add_argument("name")
    cr.add_argument("--deck", required=True, help="its buy-rate deck (imported already)")
    cr.add_argument("--trunk", default="", help="the Asterisk endpoint (default: the name)")
    cr.add_argument("--priority", type=whole_number, default=100, help="lower first (100)")
    cr.add_argument("--max-calls", type=whole_number, default=0, help="0 = unlimited")
    cr.add_argument("--cps", type=whole_number, default=0, help="0 = unlimited")
    cr.add_argument("--csv-columns", default="", metavar="SPEC",
                    help="its CDR file's columns: number=C,start=C,seconds=C,cost=C")  # fmt: skip

    up = sub.add_parser("update", help="change a carrier's deck, trunk, priority, capacity")
    up.add_argument("name")
    up.add_argument("--deck")
    up.add_argument("--trunk")
    up.add_argument("--priority", type=whole_number)
    up.add_argument("--max-calls", type=whole_number)
    up.add_argument("--cps", type=whole_number)
    up.add_argument("--disabled", type=_bool, metavar="yes|no")
    up.add_argument("--csv-columns", metavar="SPEC",
                    help="its CDR file's columns (reconcile); '' = our names")  # fmt: skip

    ds = sub.add_parser("disable", help="stop routing calls to a carrier")
    ds.add_argument("name")

    for name, p in (("create", cr), ("update", up), ("disable", ds)):
        p.add_argument("--by", default="operator", help="who makes the change (recorded)")
        p.add_argument("--now", help=NOW_HELP)
        p.set_defaults(run=Lazy(f"tollgate.carrier_cmd:cmd_{name}"))

    sub.add_parser("list", help="every carrier").set_defaults(
        run=Lazy("tollgate.carrier_cmd:cmd_list")
    )
    sh = sub.add_parser("show", help="a carrier and its history")
    sh.add_argument("name")
    sh.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_show"))
    rc = sub.add_parser("reconcile", help="compare a carrier's CDR file (CSV) with our CDRs")
    rc.add_argument("name")
    rc.add_argument("--csv", required=True, help="the carrier's CDRs, CSV with a header")
    rc.add_argument("--period", required=True, help="YYYY-MM (a month in --tz)")
    rc.add_argument("--tz", default="Europe/Warsaw", help="zone of the month and of naive times")
    rc.add_argument("--columns", default="",
                    help="their column names: number=C,start=C,seconds=C,cost=C (over the"
                    " carrier's stored --csv-columns, field by field)")  # fmt: skip
    rc.add_argument("--country", default="PL", help="home country of national numbers")
    rc.add_argument("--window-s", type=whole_number, default=10, help="start times match within")
    rc.add_argument("--tolerance-s", type=whole_number, default=1, help="billed seconds")
    rc.add_argument("--tolerance-cost", default="0.0001", help="cost, currency units")
    rc.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_reconcile"))
    sub.add_parser("sync", help="rewrite the carriers' copy in Redis").set_defaults(
        run=Lazy("tollgate.carrier_cmd:cmd_sync")
    )

    rs = sub.add_parser(
        "rule",
        help="pin or exclude carriers, or allow a loss, per account and destination prefix",
    ).add_subparsers(dest="rule_cmd", required=True)
    st = rs.add_parser("set", help="replace the rule of (account, prefix); empty: removed")
    st.add_argument("--account", help="default: every account")
    st.add_argument("--prefix", help="E.164 digits (default: every destination)")
    st.add_argument("--pin", action="append", default=[], metavar="CARRIER",
                    help="tried first, in the order given")  # fmt: skip
    st.add_argument("--exclude", action="append", default=[], metavar="CARRIER")
    st.add_argument("--allow-loss", action="store_true", help="route even below cost")
    st.add_argument("--by", default="operator", help="who makes the change (recorded)")
    st.add_argument("--now", help=NOW_HELP)
    st.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_rule_set"))
    rs.add_parser("list", help="every rule").set_defaults(
        run=Lazy("tollgate.carrier_cmd:cmd_rule_list")
    )

    rp = subparsers.add_parser("report", help="reports over the CDRs").add_subparsers(
        dest="report", required=True
    )
    mg = rp.add_parser(
        "margin", help="sell - buy of routed calls: per carrier, destination, account"
    )
    mg.add_argument("--period", required=True, help="YYYY-MM (a month in --tz)")
    mg.add_argument("--tz", help="zone of the month (default: TOLLGATE_BILLING_TIMEZONE)")
    mg.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_report_margin"))
    cq = rp.add_parser("carriers", help="carriers' quality: attempts, ASR, ACD, failure codes, PDD")
    cq.add_argument("--period", required=True, help="YYYY-MM (a month in --tz)")
    cq.add_argument("--tz", help="zone of the month (default: TOLLGATE_BILLING_TIMEZONE)")
    cq.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_report_carriers"))

    r = subparsers.add_parser(
        "routes", help="the carriers a call would try, cheapest first (least-cost routing)"
    )
    r.add_argument("--account", required=True)
    r.add_argument("--to", required=True)
    r.add_argument("--at", help="call start, ISO 8601 (no zone = UTC); default now")
    r.add_argument(
        "--seconds", type=whole_number, default=60, help="duration priced and checked (60)"
    )
    r.set_defaults(run=Lazy("tollgate.carrier_cmd:cmd_routes"))
