"""`tollgate` command line: operators' tools and the processes (serve, ...).

Every command prints one JSON document on stdout. Errors are one line on stderr:
exit 2 for bad input, 3 for "no rate", 1 when a service is unreachable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from abuse.cli_args import register as register_abuse
from billing.cli_args import register as register_billing
from billing.complaints_cli_args import register as register_complaints
from cdr.cli_args import register as register_reconcile
from core.cliout import EXIT_BAD_INPUT, EXIT_NO_RATE, EXIT_UNAVAILABLE, CliError, whole_number
from core.lazy import Lazy
from customers.cli_args import register as register_customers
from customers.sip_cli_args import register as register_sip
from notify.cli_args import register as register_notify
from notify.mail_cli_args import register as register_mail
from numbering.cli_args import register as register_numbers
from panel_api.cli_args import register as register_panel
from switch.doctor_args import register as register_asterisk
from tollgate.carrier_args import register as register_carriers
from tollgate.fx_args import register as register_fx
from tollgate.plan_args import register as register_plans

__all__ = ["CliError", "build_parser", "main"]

# Errors a command may raise, by the module that defines them, and their exit codes. A module
# that was never imported raised nothing: checking only imported ones keeps the parser from
# importing every package (start-up time of `tollgate --help` and simple commands).
BAD_INPUT_ERRORS = (
    ("rating.numbers", "InvalidNumber"),
    ("rating.deck", "DeckError"),
    ("rating.accounts", "AccountError"),
    ("rating.money", "MoneyError"),
    ("core.env", "SettingsError"),
    ("rating.accounts", "AccountNotFound"),
    ("rating.deck_store", "DeckNotFound"),
    ("rating.account_store", "ReferenceConflict"),
    ("customers.model", "CustomerError"),
    ("customers.model", "CustomerNotFound"),
    ("numbering.model", "NumberError"),
    ("numbering.model", "NumberNotFound"),
    ("customers.sip", "SipError"),
    ("rating.retag", "LayoutMismatch"),
    ("rating.account_import", "ImportErrors"),
    ("notify.errors", "NotifyError"),
    ("billing.price_changes", "PriceNoticeTooShort"),
    ("rating.carriers", "CarrierError"),
    ("rating.carriers", "CarrierNotFound"),
    ("rating.fx", "FxError"),
    ("rating.plans", "PlanError"),
    ("rating.plans", "PlanNotFound"),
)
ACCOUNT_KINDS = ("prepaid", "postpaid")  # rating.accounts.AccountKind


def _fail(message: str, code: int) -> NoReturn:
    print(f"tollgate: {message}".replace("\n", " "), file=sys.stderr)
    raise SystemExit(code)


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tollgate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="normalise and classify a dialled number")
    c.add_argument("number")
    c.add_argument("--country", default="PL")
    c.set_defaults(sync=Lazy("tollgate.offline:cmd_classify"))

    r = sub.add_parser("rate", help="rate a call with a deck file")
    r.add_argument("--deck", required=True, help="path of the deck's TOML manifest")
    r.add_argument("--to", required=True)
    r.add_argument("--at", help="answer time, ISO 8601 (no zone = the deck's zone); default now")
    r.add_argument("--seconds", type=whole_number, required=True)
    r.add_argument("--country", default="PL")
    r.set_defaults(sync=Lazy("tollgate.offline:cmd_rate"))

    d = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    d.add_parser("upgrade", help="apply pending migrations").set_defaults(
        run=Lazy("tollgate.commands:cmd_db_upgrade")
    )

    dk = sub.add_parser("deck", help="rate decks").add_subparsers(dest="deck", required=True)
    di = dk.add_parser("import", help="validate and store a deck as a new current version")
    di.add_argument("path")
    di.add_argument(
        "--effective-at",
        help="ISO 8601 instant with a zone from which it prices calls (default: now); a"
        " price increase needs a billing period's notice",
    )
    di.add_argument("--force", action="store_true", help="an increase sooner (audited)")
    di.add_argument("--reason", default="", help="why it is forced")
    di.add_argument("--by", help="who forces it (default: the login name)")
    di.set_defaults(run=Lazy("tollgate.commands:cmd_deck_import"))
    dk.add_parser("list").set_defaults(run=Lazy("tollgate.commands:cmd_deck_list"))
    ds = dk.add_parser("show")
    ds.add_argument("name")
    ds.add_argument("--version", type=whole_number)
    ds.set_defaults(run=Lazy("tollgate.commands:cmd_deck_show"))

    a = sub.add_parser("account", help="accounts").add_subparsers(dest="account", required=True)
    ac = a.add_parser("create")
    ac.add_argument("id")
    ac.add_argument("--kind", choices=list(ACCOUNT_KINDS), default="prepaid")
    ac.add_argument("--currency", default="PLN")
    ac.add_argument("--country", default="PL")
    ac.add_argument("--timezone", help="the account's zone (default: TOLLGATE_BILLING_TIMEZONE)")
    ac.add_argument("--deck")
    ac.add_argument("--credit-limit")
    ac.add_argument("--max-calls", type=whole_number, default=10)
    ac.add_argument("--cps", type=whole_number, default=2)
    ac.add_argument("--inbound-max-calls", type=whole_number, default=0)
    ac.add_argument("--inbound-cps", type=whole_number, default=5)
    ac.add_argument("--daily-cap")
    ac.add_argument("--allow-premium", action="store_true")
    ac.add_argument("--allow-high-risk", action="store_true")
    ac.add_argument("--block", action="append", default=[], metavar="PREFIX")
    ac.set_defaults(run=Lazy("tollgate.commands:cmd_account_create"))
    for name, fn in (("show", Lazy("tollgate.commands:cmd_account_show")),):
        x = a.add_parser(name)
        x.add_argument("id")
        x.set_defaults(run=fn)
    a.add_parser("list").set_defaults(run=Lazy("tollgate.commands:cmd_account_list"))
    au = a.add_parser("update")
    au.add_argument("id")
    au.add_argument("--deck")
    au.add_argument("--credit-limit")
    au.add_argument("--daily-cap")
    au.add_argument("--max-calls", type=whole_number)
    au.add_argument("--cps", type=whole_number)
    au.add_argument("--inbound-max-calls", type=whole_number)
    au.add_argument("--inbound-cps", type=whole_number)
    for flag in ("allow-premium", "allow-high-risk", "invoice-overdue"):
        au.add_argument(f"--{flag}", type=_bool, metavar="yes|no")
    au.add_argument(
        "--block",
        action="append",
        metavar="PREFIX",
        help="replaces the blocked prefixes; --block '' clears them",
    )
    au.set_defaults(run=Lazy("tollgate.commands:cmd_account_update"))
    at = a.add_parser("topup", help="add money (a ledger entry)")
    at.add_argument("id")
    at.add_argument("amount")
    at.add_argument("--kind", choices=["topup", "payment", "adjustment", "fee"], default="topup")
    at.add_argument("--reference", help="external id (payment id); repeating it adds nothing")
    at.add_argument("--note", default="")
    at.set_defaults(run=Lazy("tollgate.commands:cmd_account_topup"))
    for action in ("suspend", "resume", "close"):
        x = a.add_parser(action)
        x.add_argument("id")
        x.add_argument("--reason")
        x.set_defaults(run=Lazy("tollgate.commands:cmd_account_status"), action=action)
    ai = a.add_parser("import", help="create accounts from a CSV file (bulk onboarding)")
    ai.add_argument("path", help="CSV with a header: id, kind, deck, credit_limit, ...")
    ai.set_defaults(run=Lazy("tollgate.commands:cmd_account_import"))
    sy = a.add_parser("sync", help="re-mirror settings and apply pending entries to Redis")
    sy.add_argument("id", nargs="?")
    sy.set_defaults(run=Lazy("tollgate.commands:cmd_account_sync"))

    z = sub.add_parser("authorize", help="authorize a call (reserves credit like a real call)")
    z.add_argument("--account", required=True)
    z.add_argument("--to", required=True)
    z.add_argument("--call-id")
    z.add_argument("--caller", default="")
    z.add_argument("--switch", help="the switch the call id is from (default: this host's)")
    z.set_defaults(run=Lazy("tollgate.commands:cmd_authorize"), pg=False)

    f = sub.add_parser("finish", help="finish a call: debit its rated cost, write its CDR")
    f.add_argument("--account", required=True)
    f.add_argument("--call-id", required=True)
    f.add_argument("--billsec", type=whole_number, required=True)
    f.add_argument("--unanswered", action="store_true")
    f.add_argument("--cause", default="16")
    f.add_argument("--to", help="dialled number, for a call that was never authorized")
    f.add_argument("--switch", help="the switch the call id is from (default: this host's)")
    f.set_defaults(run=Lazy("tollgate.commands:cmd_finish"), pg=False)

    sub.add_parser("sweep", help="release reservations of calls that never finished").set_defaults(
        run=Lazy("tollgate.commands:cmd_sweep"), pg=False
    )
    cl = sub.add_parser("calls", help="running calls").add_subparsers(dest="calls", required=True)
    ls = cl.add_parser("list", help="calls the ledger holds open")
    ls.add_argument("--account")
    ls.set_defaults(run=Lazy("tollgate.commands:cmd_calls_list"), pg=False)
    hu = cl.add_parser("hangup", help="hang up a running call (through ARI)")
    hu.add_argument("call_id")
    hu.add_argument("--account", help="whose call, when accounts share the call id")
    hu.set_defaults(run=Lazy("tollgate.commands:cmd_calls_hangup"), pg=False)

    cw = sub.add_parser("cdr-writer", help="move CDRs from the ledger's streams to PostgreSQL")
    cw.add_argument("--once", action="store_true", help="drain what is there, then exit")
    cw.set_defaults(sync=Lazy("tollgate.commands:cmd_cdr_writer"))

    rd = sub.add_parser("redis", help="the Redis key layout").add_subparsers(
        dest="redis", required=True
    )
    rt = rd.add_parser("retag", help="move every account's keys to TOLLGATE_SHARDS hash tags")
    rt.add_argument(
        "--from",
        dest="from_shards",
        type=whole_number,
        required=True,
        help="the count the keys were written with (16 before it was recorded)",
    )
    rt.set_defaults(sync=Lazy("tollgate.commands:cmd_redis_retag"))

    register_abuse(sub)
    register_panel(sub)
    register_billing(sub)
    register_customers(sub)
    register_mail(sub)
    register_numbers(sub)
    register_reconcile(sub)
    register_sip(sub)
    register_asterisk(sub)
    register_notify(sub)
    register_complaints(sub)
    register_carriers(sub)
    register_fx(sub)
    register_plans(sub)

    sc = sub.add_parser(
        "scheduler", help="run the daily jobs (bill run, CDR partitions and retention)"
    )
    sc.add_argument("--once", action="store_true", help="one tick: run what is due, then exit")
    sc.add_argument("--now", help="one tick as of this ISO 8601 instant (with a zone)")
    sc.set_defaults(run=Lazy("tollgate.scheduler_cmd:cmd_scheduler"))

    sv = sub.add_parser("serve", help="run the FastAGI server, sweeper and metrics endpoint")
    sv.set_defaults(sync=Lazy("tollgate.commands:cmd_serve"))
    sw = sub.add_parser(
        "serve-worker", help="(started by serve) one more process answering FastAGI"
    )
    sw.add_argument("--index", type=int, required=True, help="1, 2, ... (0 is serve itself)")
    sw.add_argument("--parent", type=int, required=True, help="pid of the serve process")
    sw.set_defaults(sync=Lazy("tollgate.commands:cmd_serve_worker"))
    return p


def _bool(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"yes or no, not {text!r}")


def _loaded(module: str, name: str) -> type[BaseException] | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _is(exc: BaseException, module: str, name: str) -> bool:
    cls = _loaded(module, name)
    return cls is not None and isinstance(exc, cls)


def _exit_for(exc: Exception) -> tuple[str, int] | None:
    """The one-line message and exit code of an error a command raised, or None (a bug)."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if any(_is(exc, module, name) for module, name in BAD_INPUT_ERRORS):
        return str(exc), EXIT_BAD_INPUT
    if _is(exc, "rating.tariff", "NoRate"):
        return str(exc), EXIT_NO_RATE
    if _is(exc, "rating.ledger", "LedgerError"):
        code: str = getattr(exc, "code", "")
        return str(exc), EXIT_BAD_INPUT if code.startswith("BAD") else EXIT_UNAVAILABLE
    if _is(exc, "runtime.services", "ServiceUnavailable") or _is(
        exc, "rating.retag", "RetagRefused"
    ):
        return str(exc), EXIT_UNAVAILABLE
    if _is(exc, "asyncpg", "UndefinedTableError"):
        why = f"the database schema is older than this tollgate ({exc}): run `tollgate db upgrade`"
        return why, EXIT_UNAVAILABLE
    if _is(exc, "asyncpg", "PostgresError"):
        return f"PostgreSQL refused: {exc}", EXIT_UNAVAILABLE
    if _is(exc, "redis.exceptions", "RedisError"):
        return f"Redis refused: {exc}", EXIT_UNAVAILABLE
    if isinstance(exc, OSError):
        return f"cannot reach a service: {exc}", EXIT_UNAVAILABLE
    return None


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "sync"):
            sync: Callable[[argparse.Namespace], None] = args.sync
            sync(args)
            return
        from tollgate.commands import run_with_services

        run_with_services(args)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        known = _exit_for(exc)
        if known is None:
            raise
        _fail(*known)


if __name__ == "__main__":
    main()
