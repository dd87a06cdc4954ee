"""`tollgate number ...`: the arguments only; the handlers (numbering/cli.py) are imported
when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import NOW_HELP
from core.lazy import Lazy

TYPES = ("geographic", "mobile", "non_geographic", "foreign")  # numbering.model.NumberType
STATUSES = ("free", "assigned", "quarantined", "ported_out")  # numbering.model.NumberStatus


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `number add|assign|release|list|show|caller-id|port-out|sweep`."""
    n = subparsers.add_parser("number", help="telephone numbers (DIDs) and their assignment")
    sub = n.add_subparsers(dest="number_cmd", required=True)

    ad = sub.add_parser("add", help="add a number to the inventory (free)")
    ad.add_argument("number")
    ad.add_argument("--carrier", required=True, help="the carrier it comes from")
    ad.add_argument("--cost", required=True, help="what the carrier charges per month")
    ad.add_argument("--price", required=True, help="what the customer pays per month (gross)")
    ad.add_argument("--type", choices=TYPES, help="default: from the numbering plan")

    asg = sub.add_parser("assign", help="give a free number to an account (starts its fee)")
    asg.add_argument("number")
    asg.add_argument("account")
    asg.add_argument("--caller-id", action="store_true", help="make it the account's caller id")

    rl = sub.add_parser("release", help="take a number back into quarantine (ends its fee)")
    rl.add_argument("number")
    rl.add_argument("--reason", default="")

    po = sub.add_parser("port-out", help="the number leaves for another operator (§4.5-4.6)")
    po.add_argument("number")

    ci = sub.add_parser("caller-id", help="the number an account's calls present by default")
    ci.add_argument("account")
    ci.add_argument("number", nargs="?", help="one of the account's numbers; none: withheld")

    ls = sub.add_parser("list", help="numbers of the inventory")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--account")

    sh = sub.add_parser("show", help="a number and its history")
    sh.add_argument("number")

    sw = sub.add_parser("sweep", help="quarantined numbers whose rest is over go back to the pool")
    sub.add_parser(
        "sync", help="route every assigned number in Redis (inbound calls)"
    ).set_defaults(run=Lazy("numbering.cli:cmd_sync"))

    for name, p in (("add", ad), ("assign", asg), ("release", rl), ("port_out", po),
                    ("caller_id", ci), ("sweep", sw)):  # fmt: skip
        p.add_argument("--by", default="operator", help="who makes the change (recorded)")
        p.add_argument("--now", help=NOW_HELP)
        p.set_defaults(run=Lazy(f"numbering.cli:cmd_{name}"))
    ls.set_defaults(run=Lazy("numbering.cli:cmd_list"))
    sh.set_defaults(run=Lazy("numbering.cli:cmd_show"))
