"""`tollgate sip ...`: the arguments only; the handlers (customers/sip_cli.py) are imported
when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import whole_number
from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `sip create|list|show|passwd|disable|enable|delete|resync`."""
    s = subparsers.add_parser("sip", help="SIP logins of accounts (realtime PJSIP)")
    sub = s.add_subparsers(dest="sip", required=True)

    cr = sub.add_parser("create", help="a new SIP login; its password is shown once")
    cr.add_argument("account")
    cr.add_argument("--login", help="4-15 digits (default: a free random 7-digit one)")
    cr.add_argument("--max-contacts", type=whole_number, default=1, help="phones at once")
    cr.set_defaults(run=Lazy("customers.sip_cli:cmd_create"))

    ls = sub.add_parser("list", help="logins, their state and registrations")
    ls.add_argument("--account")
    ls.set_defaults(run=Lazy("customers.sip_cli:cmd_list"))

    for name, help_text in (
        ("show", "one login and its registrations"),
        ("passwd", "a new generated password (shown once); registered phones are dropped"),
        ("delete", "remove the login (Asterisk refuses it at its next request)"),
        ("enable", "accept the login again (after disable or a lockout)"),
    ):
        x = sub.add_parser(name, help=help_text)
        x.add_argument("login")
        x.set_defaults(run=Lazy(f"customers.sip_cli:cmd_{name}"))

    ds = sub.add_parser("disable", help="refuse the login from its next REGISTER/INVITE")
    ds.add_argument("login")
    ds.add_argument("--reason", default="")
    ds.set_defaults(run=Lazy("customers.sip_cli:cmd_disable"))

    sub.add_parser(
        "resync", help="rewrite Asterisk's rows of every active login (after settings changed)"
    ).set_defaults(run=Lazy("customers.sip_cli:cmd_resync"))

    sub.add_parser(
        "guard",
        help="lock SIP logins and block addresses after repeated failed authentications"
        " (Asterisk's security events over AMI; TOLLGATE_SIP_GUARD_*)",
    ).set_defaults(run=Lazy("tollgate.sip_guard_cmd:cmd_guard"))
