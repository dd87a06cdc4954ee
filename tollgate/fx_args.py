"""`tollgate fx ...`: the arguments only; the handlers (tollgate/fx_cmd.py) are imported when
a command runs."""

from __future__ import annotations

import argparse

from core.lazy import Lazy

NOW_HELP = "act as of this ISO 8601 time with its zone (default: now)"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `fx set|list|import|convert`."""
    fx = subparsers.add_parser("fx", help="exchange rates for buy decks in other currencies")
    sub = fx.add_subparsers(dest="fx_cmd", required=True)

    st = sub.add_parser("set", help="1 BASE = RATE QUOTE from an instant on")
    st.add_argument("base", help="ISO 4217 code, e.g. EUR")
    st.add_argument("quote", help="ISO 4217 code, e.g. PLN")
    st.add_argument("rate", help="exact decimal, e.g. 4.3125 (at most 12 decimals)")
    st.add_argument("--effective-at", required=True, help="ISO 8601 with its zone")
    st.add_argument("--by", default="operator", help="who sets it (recorded)")
    st.add_argument("--now", help=NOW_HELP)
    st.set_defaults(run=Lazy("tollgate.fx_cmd:cmd_set"))

    ls = sub.add_parser("list", help="the rates stored (one pair: BASE QUOTE)")
    ls.add_argument("base", nargs="?", default="")
    ls.add_argument("quote", nargs="?", default="")
    ls.set_defaults(run=Lazy("tollgate.fx_cmd:cmd_list"))

    im = sub.add_parser("import", help="NBP table A (XML of its API): every currency -> PLN")
    im.add_argument("file")
    im.add_argument("--effective-at", help="ISO 8601 with its zone (default: the midnight in"
                    " Warsaw after the table's date)")  # fmt: skip
    im.add_argument("--by", default="operator", help="who imports it (recorded)")
    im.add_argument("--now", help=NOW_HELP)
    im.set_defaults(run=Lazy("tollgate.fx_cmd:cmd_import"))

    cv = sub.add_parser("convert", help="an amount in another currency, as routing converts it")
    cv.add_argument("amount", help="decimal, e.g. 0.0123")
    cv.add_argument("base")
    cv.add_argument("quote")
    cv.add_argument("--at", help="ISO 8601 with its zone (default: now)")
    cv.set_defaults(run=Lazy("tollgate.fx_cmd:cmd_convert"))
