"""`tollgate panel` and `tollgate token ...`: the arguments only; the handlers
(panel_api/cli.py, aiohttp...) are imported when a command runs."""

from __future__ import annotations

import argparse

from core.cliout import whole_number
from core.lazy import Lazy

ROLES = ("customer", "operator")  # panel_api.tokens.Role (tests/unit/test_cli_startup.py checks)
LOGIN_ROLES = ("customer", "support", "admin")  # panel_api.logins.LoginRole
CUSTOMER_DAYS = 90  # panel_api.tokens.CUSTOMER_DAYS (checked there too)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `panel`, `token create|rotate|revoke|list` and `login set|list` to tollgate's
    sub-commands."""
    pn = subparsers.add_parser(
        "panel",
        help="serve the panel API and customer page (TOLLGATE_PANEL_HOST/PORT, "
        "default 127.0.0.1:8080)",
    )
    pn.set_defaults(sync=Lazy("panel_api.cli:cmd_panel"))

    tk = subparsers.add_parser("token", help="panel API tokens")
    sub = tk.add_subparsers(dest="token", required=True)
    cr = sub.add_parser("create", help="a new token; its secret is printed once")
    cr.add_argument("--role", choices=list(ROLES), required=True)
    cr.add_argument("--account", help="the account a customer token reads")
    cr.add_argument("--label", default="", help="who or what holds it")
    days = (
        f"days until it expires (customer tokens default to {CUSTOMER_DAYS}; operator tokens"
        " never expire unless given; 0 = never, operators only)"
    )
    cr.add_argument("--expires-days", type=whole_number, help=days)
    cr.set_defaults(run=Lazy("panel_api.cli:cmd_token_create"))
    ro = sub.add_parser(
        "rotate",
        help="a new token like the given one (role, account, label); the old one is revoked",
    )
    ro.add_argument("id")
    ro.add_argument("--expires-days", type=whole_number, help=days)
    ro.set_defaults(run=Lazy("panel_api.cli:cmd_token_rotate"))
    rv = sub.add_parser("revoke", help="revoke a token by its id (tok_...)")
    rv.add_argument("id")
    rv.set_defaults(run=Lazy("panel_api.cli:cmd_token_revoke"))
    ls = sub.add_parser("list", help="tokens with their expiry and last use (never their secrets)")
    ls.add_argument("--account")
    ls.set_defaults(run=Lazy("panel_api.cli:cmd_token_list"))

    lg = subparsers.add_parser("login", help="panel sign-in logins (login and password)")
    lsub = lg.add_subparsers(dest="login", required=True)
    st = lsub.add_parser(
        "set",
        help="create a login or give it a new password (read from the first line of stdin);"
        " a locked login is unlocked",
    )
    st.add_argument("name", help="3-64 of a-z 0-9 . _ @ -")
    st.add_argument("--role", choices=list(LOGIN_ROLES), required=True)
    st.add_argument("--account", help="the account a customer login reads")
    st.add_argument(
        "--email",
        help="where a password reset is mailed (a customer login without one: its customer's)",
    )
    st.set_defaults(run=Lazy("panel_api.cli:cmd_login_set"))
    ll = lsub.add_parser("list", help="logins with their role, failures and lock (no hashes)")
    ll.set_defaults(run=Lazy("panel_api.cli:cmd_login_list"))
