"""`tollgate mail send|run`: the arguments only; the handler is imported when it runs."""

from __future__ import annotations

import argparse

from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = subparsers.add_parser("mail", help="e-mail: documents to buyers, the outbox")
    sub = m.add_subparsers(dest="mail", required=True)
    s = sub.add_parser("send", help="queue new documents' e-mails and send what is due")
    s.add_argument("--now", help="act as of this ISO 8601 time (default: now)")
    s.set_defaults(run=Lazy("tollgate.mail:cmd_send"))
    r = sub.add_parser("run", help="send continuously (metrics on TOLLGATE_METRICS_PORT when set)")
    r.add_argument("--interval", type=float, default=30.0, help="seconds between passes")
    r.set_defaults(run=Lazy("tollgate.mail:cmd_run"))
