"""`tollgate customer ...`: the arguments only; the handlers (customers/cli.py) are imported
when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import NOW_HELP
from core.lazy import Lazy

KINDS = ("consumer", "business")  # customers.model.CustomerKind
VERIFICATIONS = ("pending", "verified", "rejected")  # customers.model.Verification


def _record_fields(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("--name", required=create, dest="legal_name", help="legal name")
    p.add_argument("--email", required=create, help="billing e-mail")
    p.add_argument("--kind", choices=KINDS, default="consumer" if create else None)
    p.add_argument("--nip", dest="tax_id", help="Polish NIP (checksum-validated)")
    p.add_argument("--vat-id", help="EU VAT id with its country prefix")
    p.add_argument("--street")
    p.add_argument("--postal-code")
    p.add_argument("--city")
    p.add_argument("--country", help="ISO 3166 two-letter code (default PL)")
    p.add_argument("--phone")
    p.add_argument("--language", help="ISO 639-1 code (default pl)")
    p.add_argument("--by", default="operator", help="who makes the change (recorded)")
    p.add_argument("--now", help=NOW_HELP)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `customer create|show|update|verify|list|attach|export|anonymise`."""
    c = subparsers.add_parser("customer", help="customer records (who stands behind accounts)")
    sub = c.add_subparsers(dest="customer", required=True)

    cr = sub.add_parser("create", help="a new customer record, pending verification")
    cr.add_argument("id")
    _record_fields(cr, create=True)
    cr.add_argument("--account", action="append", default=[], help="an account it owns")
    cr.set_defaults(run=Lazy("customers.cli:cmd_create"))

    sh = sub.add_parser("show", help="a record, its accounts and contract dates")
    sh.add_argument("id")
    sh.set_defaults(run=Lazy("customers.cli:cmd_show"))

    up = sub.add_parser("update", help="change fields of a record")
    up.add_argument("id")
    _record_fields(up, create=False)
    up.set_defaults(run=Lazy("customers.cli:cmd_update"))

    ve = sub.add_parser("verify", help="record the verification's outcome")
    ve.add_argument("id")
    ve.add_argument("--status", choices=VERIFICATIONS, default="verified", help="default: verified")
    ve.add_argument("--by", required=True, help="who verified (recorded with the time)")
    ve.add_argument("--note", default="")
    ve.add_argument("--now", help=NOW_HELP)
    ve.set_defaults(run=Lazy("customers.cli:cmd_verify"))

    ls = sub.add_parser("list", help="customer records")
    ls.add_argument("--verification", choices=VERIFICATIONS)
    ls.set_defaults(run=Lazy("customers.cli:cmd_list"))

    ex = sub.add_parser("export", help="everything held about a customer (its subject's copy)")
    ex.add_argument("id")
    ex.set_defaults(run=Lazy("customers.cli:cmd_export"))

    an = sub.add_parser("anonymise", help="erase personal data once retention allows it")
    an.add_argument("id")
    an.add_argument("--retention-months", type=int, default=12)
    an.add_argument("--by", required=True, help="who asked (recorded)")
    an.add_argument("--now", help=NOW_HELP)
    an.set_defaults(run=Lazy("customers.cli:cmd_anonymise"))

    at = sub.add_parser("attach", help="make a customer the owner of an account")
    at.add_argument("id")
    at.add_argument("account")
    at.add_argument("--by", default="operator")
    at.add_argument("--now", help=NOW_HELP)
    at.set_defaults(run=Lazy("customers.cli:cmd_attach"))
