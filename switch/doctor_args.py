"""`tollgate asterisk ...`: the arguments only; the doctor (switch/doctor.py) is imported
when the command runs."""

from __future__ import annotations

import argparse

from core.lazy import Lazy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `asterisk check` (the doctor: switch/doctor.py)."""
    a = subparsers.add_parser("asterisk", help="the Asterisk tollgate runs with")
    sub = a.add_subparsers(dest="asterisk", required=True)
    ck = sub.add_parser(
        "check", help="check a live Asterisk: ARI, Stasis app, modules, contexts, realtime"
    )
    ck.add_argument("--ari-url", help="default TOLLGATE_ARI_URL, e.g. http://127.0.0.1:8088")
    ck.add_argument("--ari-user", help="default TOLLGATE_ARI_USER")
    ck.add_argument("--ari-password", help="default TOLLGATE_ARI_PASSWORD")
    ck.add_argument("--app", help="the Stasis application (default TOLLGATE_ARI_APP)")
    ck.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    ck.set_defaults(sync=Lazy("switch.doctor_cli:cmd_check"))

    mt = sub.add_parser(
        "metrics", help="relay Asterisk's res_prometheus metrics (HTTP on loopback) for scraping"
    )
    mt.add_argument("--url", help="default TOLLGATE_ASTERISK_METRICS_URL or 127.0.0.1:8088")
    mt.set_defaults(sync=Lazy("switch.asterisk_metrics:cmd_metrics"))
