"""`tollgate plan ...`: the arguments only; the handlers (tollgate/plan_cmd.py) are imported
when a command runs."""

from __future__ import annotations

import argparse

from core.lazy import Lazy

NOW_HELP = "act as of this ISO 8601 instant, with a zone (default: now)"
ALLOWANCE_HELP = (
    "SECONDS[:CLASSES[:PREFIXES[:LABEL]]] (minutes: 300m), lists comma-separated, e.g."
    " 300m:mobile,geographic:48:PL mobile+fixed; repeat for more"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `plan create|list|show|update|disable|assign|unassign`."""
    p = subparsers.add_parser("plan", help="plans: minute bundles for a fee per month")
    sub = p.add_subparsers(dest="plan_cmd", required=True)

    cr = sub.add_parser("create", help="add a plan")
    cr.add_argument("name")
    cr.add_argument("--fee", required=True, help="net fee per month, e.g. 29.99")
    cr.add_argument("--currency", default="PLN")
    cr.add_argument("--allowance", action="append", required=True, help=ALLOWANCE_HELP)

    up = sub.add_parser("update", help="change a plan's fee or allowances")
    up.add_argument("name")
    up.add_argument("--fee", help="net fee per month")
    up.add_argument("--allowance", action="append", help=f"replaces them all: {ALLOWANCE_HELP}")

    ds = sub.add_parser("disable", help="no new assignments (accounts on it keep it)")
    ds.add_argument("name")

    asg = sub.add_parser("assign", help="put an account on a plan from an instant")
    asg.add_argument("account")
    asg.add_argument("plan")
    asg.add_argument("--start", required=True, help="ISO 8601 instant with a zone")

    un = sub.add_parser("unassign", help="end an account's plan at an instant")
    un.add_argument("account")
    un.add_argument("--end", required=True, help="ISO 8601 instant with a zone")

    for name, q in (("create", cr), ("update", up), ("disable", ds), ("assign", asg),
                    ("unassign", un)):  # fmt: skip
        q.add_argument("--by", default="operator", help="who makes the change (recorded)")
        q.add_argument("--now", help=NOW_HELP)
        q.set_defaults(run=Lazy(f"tollgate.plan_cmd:cmd_{name}"))

    sub.add_parser("list", help="every plan").set_defaults(run=Lazy("tollgate.plan_cmd:cmd_list"))
    sh = sub.add_parser("show", help="a plan and its history")
    sh.add_argument("name")
    sh.set_defaults(run=Lazy("tollgate.plan_cmd:cmd_show"))
    ac = sub.add_parser("account", help="an account's plans and this month's bundle usage")
    ac.add_argument("account")
    ac.add_argument("--now", help=NOW_HELP)
    ac.set_defaults(run=Lazy("tollgate.plan_cmd:cmd_account"))
