"""`tollgate bill ...` and `tollgate cdr rerate`: the arguments only; the handlers
(billing/cli.py) are imported when a command runs."""

from __future__ import annotations

import argparse

from cdr.cli_args import cdr_group
from core.cliout import NOW_HELP
from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bill run|listing|invoices|pay|pdf|ksef|ksef-pending|show|subscribe|unsubscribe` and
    `cdr rerate`."""
    b = subparsers.add_parser("bill", help="billing: runs, call listings, invoices, payments")
    sub = b.add_subparsers(dest="bill", required=True)

    rn = sub.add_parser("run", help="fees, invoices, overdue flags, prepaid lifecycle")
    rn.add_argument("--period", help="YYYY-MM (default: the month before --now)")
    rn.add_argument("--now", help=NOW_HELP)
    rn.add_argument(
        "--shard",
        metavar="I/N",
        help="bill only the accounts whose id hashes to I of N (N runs side by side, I = 0..N-1)",
    )
    rn.set_defaults(run=Lazy("billing.cli:cmd_run"))

    ls = sub.add_parser("listing", help="an account's calls in a period, with totals")
    ls.add_argument("--account", required=True)
    ls.add_argument("--period", required=True, help="YYYY-MM in the account's time zone")
    ls.add_argument(
        "--csv",
        action="store_true",
        help="the calls as CSV instead of JSON: the customers' CDR export format",
    )
    ls.add_argument(
        "--format",
        choices=("standard", "excel-pl"),  # cdr.export_format.DIALECTS
        default="standard",
        help="with --csv: standard (RFC 4180, ISO 8601 times) or excel-pl (';', decimal"
        " comma, UTF-8 BOM, local times)",
    )
    ls.set_defaults(run=Lazy("billing.cli:cmd_listing"))

    iv = sub.add_parser("invoices", help="an account's invoices and credit notes")
    iv.add_argument("--account", required=True)
    iv.add_argument("--now", help=NOW_HELP)
    iv.set_defaults(run=Lazy("billing.cli:cmd_invoices"))

    py = sub.add_parser("pay", help="record a payment (a ledger entry; repeat-safe)")
    py.add_argument("--account", required=True)
    py.add_argument("--amount", required=True)
    py.add_argument(
        "--reference", required=True, help="the payment's id; repeating it adds nothing"
    )
    py.add_argument("--note", default="")
    py.add_argument("--now", help=NOW_HELP)
    py.set_defaults(run=Lazy("billing.cli:cmd_pay"))

    pd = sub.add_parser("pdf", help="a document (invoice, credit note, pro-forma) as PDF")
    pd.add_argument("number", help="the document's number, e.g. INV/2026/11/000001")
    pd.add_argument("-o", "--output", required=True, help="the PDF file to write")
    pd.set_defaults(run=Lazy("billing.cli:cmd_pdf"))

    ks = sub.add_parser("ksef", help="a B2B document as KSeF FA(3) XML, schema-checked")
    ks.add_argument("number", help="the document's number")
    ks.add_argument("-o", "--output", help="write the XML here (default: standard output)")
    ks.add_argument(
        "--send", action="store_true", help="send it to KSeF (TOLLGATE_KSEF_*) and keep its number"
    )
    ks.add_argument(
        "--upo",
        action="store_true",
        help="KSeF's receipt (UPO) of the accepted document: fetched unless kept; -o writes it",
    )
    ks.add_argument("--now", help=NOW_HELP)
    ks.set_defaults(run=Lazy("billing.cli:cmd_ksef"))

    kp = sub.add_parser(
        "ksef-pending",
        help="send the B2B documents KSeF has not accepted yet, fetch the UPOs not kept yet",
    )
    kp.add_argument("--now", help=NOW_HELP)
    kp.set_defaults(run=Lazy("billing.cli:cmd_ksef_pending"))

    sh = sub.add_parser("show", help="one document as issued, with its KSeF number and UPO")
    sh.add_argument("number", help="the document's number")
    sh.set_defaults(run=Lazy("billing.cli:cmd_show"))

    _bank(sub)

    sb = sub.add_parser("subscribe", help="start a monthly fee for an account")
    sb.add_argument("--account", required=True)
    sb.add_argument("--name", required=True)
    sb.add_argument("--fee", required=True, help="gross amount per month")
    sb.add_argument("--from", dest="start", help="YYYY-MM-DD (default: today)")
    sb.add_argument("--now", help=NOW_HELP)
    sb.set_defaults(run=Lazy("billing.cli:cmd_subscribe"))

    us = sub.add_parser("unsubscribe", help="end a monthly fee")
    us.add_argument("--account", required=True)
    us.add_argument("--name", required=True)
    us.add_argument("--on", help="last day, YYYY-MM-DD (default: today)")
    us.add_argument("--now", help=NOW_HELP)
    us.set_defaults(run=Lazy("billing.cli:cmd_unsubscribe"))

    og = subparsers.add_parser("outage", help="outages and their compensation (terms §9.7)")
    osub = og.add_subparsers(dest="outage", required=True)
    orc = osub.add_parser("record", help="record an outage that is over")
    orc.add_argument("--start", required=True, help="ISO 8601 (no zone: the billing zone)")
    orc.add_argument("--end", required=True, help="ISO 8601 (no zone: the billing zone)")
    orc.add_argument("--account", action="append", help="affected account (default: all)")
    orc.add_argument("--reason", default="")
    orc.add_argument("--by", help="who records it (default: the login name)")
    orc.add_argument("--now", help=NOW_HELP)
    orc.set_defaults(run=Lazy("billing.cli:cmd_outage_record"))
    ocp = osub.add_parser("compensate", help="credit each affected account (once)")
    ocp.add_argument("id", type=int)
    ocp.add_argument("--now", help=NOW_HELP)
    ocp.set_defaults(run=Lazy("billing.cli:cmd_outage_compensate"))
    osub.add_parser("list").set_defaults(run=Lazy("billing.cli:cmd_outage_list"))
    oru = osub.add_parser("rule", help="an account's compensation rule (its own or the default)")
    oru.add_argument("account")
    oru.add_argument(
        "rule",
        choices=("use_per_day", "month_per_12h", "default"),
        help="use_per_day: terms §9.7; month_per_12h: the other provider's §10c;"
        " default: follow TOLLGATE_OUTAGE_RULE",
    )
    oru.add_argument("--by", help="who sets it (default: the login name)")
    oru.add_argument("--now", help=NOW_HELP)
    oru.set_defaults(run=Lazy("billing.cli:cmd_outage_rule"))
    osub.add_parser("rules", help="the default and the accounts' own rules").set_defaults(
        run=Lazy("billing.cli:cmd_outage_rules")
    )

    tg = subparsers.add_parser("trial", help="trial accounts: a credit and an end date")
    tsub = tg.add_subparsers(dest="trial", required=True)
    ts = tsub.add_parser("start", help="open an account's trial (once)")
    ts.add_argument("account")
    ts.add_argument("--credit", default="0", help="amount credited, e.g. 10.00")
    ts.add_argument("--now", help=NOW_HELP)
    ts.set_defaults(run=Lazy("billing.cli:cmd_trial_start"))
    tsub.add_parser("list").set_defaults(run=Lazy("billing.cli:cmd_trial_list"))
    ta = tsub.add_parser("advance", help="take the due steps now (the scheduler does it)")
    ta.add_argument("--now", help=NOW_HELP)
    ta.set_defaults(run=Lazy("billing.cli:cmd_trial_advance"))

    rr = cdr_group(subparsers).add_parser("rerate", help="re-rate a period's calls with a deck")
    rr.add_argument("--account", help="the account (required for the sell side)")
    rr.add_argument("--period", required=True,
                    help="YYYY-MM in the account's time zone (buy side: in --tz)")  # fmt: skip
    rr.add_argument(
        "--deck",
        help="NAME (each call with the version in force at its start) or NAME:VERSION;"
        " required for the sell side; buy side: default each call's own buy deck",
    )
    rr.add_argument("--buy", action="store_true",
                    help="re-rate what routed calls cost the operator (carriers' decks)")
    rr.add_argument("--carrier", help="buy side: only this carrier's calls (implies --buy)")
    rr.add_argument("--tz", default="Europe/Warsaw", help="buy side: zone of the month")
    rr.add_argument("--by", default="operator", help="buy side: who re-rates (recorded)")
    rr.add_argument("--apply", action="store_true",
                    help="book the difference (once); buy side: update the CDRs")  # fmt: skip
    rr.add_argument("--now", help=NOW_HELP)
    rr.set_defaults(run=Lazy("billing.cli:cmd_rerate"))


def _bank(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`bill bank import|unmatched|assign|virtual`: payments from bank statements."""
    bk = sub.add_parser("bank", help="bank statements: import, unmatched credits, assign")
    bsub = bk.add_subparsers(dest="bank", required=True)
    im = bsub.add_parser("import", help="book the credits of an MT940 or camt.053 file")
    im.add_argument("file")
    im.add_argument("--now", help=NOW_HELP)
    im.set_defaults(run=Lazy("billing.cli_bank:cmd_import"))
    un = bsub.add_parser("unmatched", help="credits no account was found for")
    un.set_defaults(run=Lazy("billing.cli_bank:cmd_unmatched"))
    asg = bsub.add_parser("assign", help="book an unmatched credit to an account")
    asg.add_argument("bank_ref", help="the bank's transaction id (see unmatched)")
    asg.add_argument("--account", required=True)
    asg.add_argument("--by", required=True, help="who decided")
    asg.add_argument("--now", help=NOW_HELP)
    asg.set_defaults(run=Lazy("billing.cli_bank:cmd_assign"))
    va = bsub.add_parser("virtual", help="give an account a virtual account number (IBAN)")
    va.add_argument("iban")
    va.add_argument("--account", required=True)
    va.set_defaults(run=Lazy("billing.cli_bank:cmd_virtual"))
