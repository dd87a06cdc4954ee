"""`tollgate` command line: operators' tools and the processes (serve, ...).

Every command prints one JSON document on stdout. Errors are one line on stderr:
exit 2 for bad input, 3 for "no rate", 1 when a service is unreachable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from core import db
from core.cliout import (
    EXIT_BAD_INPUT,
    EXIT_NO_RATE,
    EXIT_UNAVAILABLE,
    CliError,
    print_json,
    whole_number,
)
from core.loop import run_async
from rating.account_store import ReferenceConflict
from rating.accounts import Account, AccountError, AccountKind, AccountNotFound, AccountStatus
from rating.deck import DeckError, load_deck
from rating.deck_store import DeckNotFound, import_deck, list_decks, load_deck_version, publish
from rating.ledger import CallRequest, LedgerError, Outcome
from rating.money import MoneyError, format_micro, parse_micro
from rating.numbers import InvalidNumber, NumberClass, normalise
from rating.tariff import NoRate, rate_call
from runtime.services import Services, ServiceUnavailable, services
from runtime.settings import Settings, SettingsError


def _fail(message: str, code: int) -> NoReturn:
    print(f"tollgate: {message}".replace("\n", " "), file=sys.stderr)
    raise SystemExit(code)


# -- commands without services ---------------------------------------------------------------


def cmd_classify(args: argparse.Namespace) -> None:
    print_json(normalise(args.number, args.country).as_dict())


def cmd_rate(args: argparse.Namespace) -> None:
    deck = load_deck(args.deck)
    number = normalise(args.to, args.country)
    at = _parse_at(args.at, deck.timezone)
    if args.seconds < 0:
        raise CliError("--seconds must be >= 0")
    if number.number_class is NumberClass.EMERGENCY:
        print_json(
            {
                "cost": format_micro(0, deck.decimals),
                "billable_seconds": 0,
                "prefix": "",
                "currency": deck.currency,
                "number": number.as_dict(),
                "free": "emergency",
            }
        )
        return
    rated = rate_call(deck, number.digits, at, args.seconds)
    print_json(
        {
            "cost": format_micro(rated.cost, deck.decimals),
            "billable_seconds": rated.billable_seconds,
            "prefix": rated.prefix,
            "name": rated.name,
            "currency": rated.currency,
            "connect_fee": format_micro(rated.connect_fee, deck.decimals),
            "exact_micro": str(rated.exact),
            "cost_micro": rated.cost,
            "seconds": args.seconds,
            "at": at.isoformat(),
            "deck": deck.name,
            "number": number.as_dict(),
            "segments": [
                {
                    "from_s": s.start_s,
                    "increment_s": s.increment_s,
                    "count": s.count,
                    "band": s.row.band,
                    "rate": format_micro(s.row.rate, deck.decimals),
                    "rate_unit_s": s.row.rate_unit_s,
                    "line": s.row.line,
                }
                for s in rated.segments
            ],
        }
    )


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    from tollgate.serve import serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_async(serve(Settings.from_env()))


def cmd_cdr_writer(args: argparse.Namespace) -> None:
    import logging
    import signal

    from cdr.writer import CdrStoreUnavailable, CdrWriter, WriterSettings
    from core.exporter import standalone_metrics

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()

    async def run() -> None:
        from runtime.services import open_redis

        redis = open_redis(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with CdrWriter(
                redis,
                settings.keyspace,
                settings.pg_dsn,
                WriterSettings.from_env(),
                standalone_metrics(),
            ) as writer:
                if args.once:
                    try:
                        result = await writer.drain_round()
                    except CdrStoreUnavailable as exc:
                        raise CliError(f"CDRs wait in Redis: {exc}", EXIT_UNAVAILABLE) from None
                    print_json({"written": result.written, "skipped": result.skipped})
                    if result.skipped:
                        # their CDRs stay in Redis: a cron job or script must not see success
                        why = "; ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items()))
                        raise CliError(
                            f"{len(result.skipped)} of {len(writer.streams)} CDR streams"
                            f" skipped: {why}",
                            EXIT_UNAVAILABLE,
                        )
                else:
                    await writer.run(stop)
        finally:
            await redis.aclose()

    run_async(run())


def _parse_at(text: str | None, timezone: str) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at: not an ISO 8601 date-time: {text!r}") from None
    if at.tzinfo is None:  # a wall-clock time in the deck's zone
        at = at.replace(tzinfo=ZoneInfo(timezone))
    return at


# -- commands with services ------------------------------------------------------------------


async def cmd_db_upgrade(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        applied = await db.upgrade(conn)
    print_json({"applied": applied})


async def cmd_deck_import(s: Services, args: argparse.Namespace) -> None:
    deck = load_deck(args.path)
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        stored, created = await import_deck(conn, deck, source=str(args.path))
    await publish(s.redis, s.settings.keyspace, stored)
    print_json(
        {
            "name": stored.name,
            "version": stored.version,
            "created": created,
            "rows": len(stored.rows),
            "prefixes": len(stored.prefixes),
            "current": True,
        }
    )


async def cmd_deck_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json(await list_decks(conn))


async def cmd_deck_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        deck = await load_deck_version(conn, args.name, args.version)
    print_json(
        {
            **deck.manifest(),
            "version": deck.version,
            "sha256": deck.sha256,
            "rows": [r.as_dict() for r in deck.rows],
        }
    )


def _account_view(account: Account, live: dict[str, int] | None) -> dict[str, Any]:
    out = account.as_dict()
    out["credit_limit"] = format_micro(account.credit_limit)
    out["daily_cap"] = format_micro(account.daily_cap)
    if live is not None:
        out.update({k: format_micro(v) if k != "open_calls" else v for k, v in live.items()})
    return out


async def cmd_account_create(s: Services, args: argparse.Namespace) -> None:
    account = Account(
        id=args.id,
        kind=AccountKind(args.kind),
        currency=args.currency,
        country=args.country.upper(),
        timezone=args.timezone,
        deck=args.deck,
        credit_limit=_money(args.credit_limit, "--credit-limit"),
        max_calls=args.max_calls,
        cps=args.cps,
        daily_cap=_money(args.daily_cap, "--daily-cap"),
        allow_premium=args.allow_premium,
        allow_high_risk=args.allow_high_risk,
        blocked_prefixes=tuple(p.lstrip("+") for p in args.block),
    )
    created = await s.accounts.create(account)
    print_json(_account_view(created, (await s.accounts.live(created.id)).as_dict()))


async def cmd_account_show(s: Services, args: argparse.Namespace) -> None:
    account = await s.accounts.get(args.id)
    view = _account_view(account, (await s.accounts.live(args.id)).as_dict())
    view["entries"] = [
        {**e.as_dict(), "amount": format_micro(e.amount)}
        for e in await s.accounts.entries(args.id, 10)
    ]
    view["open_call_ids"] = sorted(await s.ledger.open_calls(args.id))
    print_json(view)


async def cmd_account_list(s: Services, args: argparse.Namespace) -> None:
    print_json([_account_view(a, None) for a in await s.accounts.all()])


async def cmd_account_update(s: Services, args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {}
    if args.deck is not None:
        changes["deck"] = args.deck or None
    if args.credit_limit is not None:
        changes["credit_limit"] = _money(args.credit_limit, "--credit-limit")
    if args.daily_cap is not None:
        changes["daily_cap"] = _money(args.daily_cap, "--daily-cap")
    for name in ("max_calls", "cps", "allow_premium", "allow_high_risk", "invoice_overdue"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.block is not None:
        changes["blocked_prefixes"] = tuple(p.lstrip("+") for p in args.block if p)
    if not changes:
        raise CliError("nothing to change")
    updated = await s.accounts.update(args.id, **changes)
    print_json(_account_view(updated, (await s.accounts.live(args.id)).as_dict()))


async def cmd_account_topup(s: Services, args: argparse.Namespace) -> None:
    amount = _money(args.amount, "AMOUNT")
    now = datetime.now(UTC)  # one instant for the entry and what billing does with it
    entry, created = await s.accounts.add_entry(
        args.id,
        args.kind,
        amount if args.kind != "fee" else -amount,
        args.reference,
        args.note,
        at=now,
    )
    invoice = None
    if entry.kind in ("topup", "payment"):
        from billing.payments import money_received
        from billing.settings import BillingSettings

        document, _ = await money_received(s.accounts, entry, BillingSettings.from_env(), now)
        invoice = document.number if document is not None else None
    live = (await s.accounts.live(args.id)).as_dict()
    print_json(
        {
            "entry": {**entry.as_dict(), "amount": format_micro(entry.amount)},
            "created": created,
            "invoice": invoice,
            **{
                k: format_micro(v)
                for k, v in live.items()
                if k in ("balance", "available", "reserved")
            },
        }
    )


async def cmd_account_status(s: Services, args: argparse.Namespace) -> None:
    status = {
        "suspend": AccountStatus.SUSPENDED,
        "resume": AccountStatus.ACTIVE,
        "close": AccountStatus.CLOSED,
    }[args.action]
    account = await s.accounts.set_status(args.id, status, args.reason or "")
    print_json(_account_view(account, (await s.accounts.live(args.id)).as_dict()))


async def cmd_account_sync(s: Services, args: argparse.Namespace) -> None:
    if args.id:
        print_json({"applied": await s.accounts.sync(args.id)})
    else:
        print_json({"applied": await s.accounts.sync_all()})


async def cmd_authorize(s: Services, args: argparse.Namespace) -> None:
    grant = await s.ledger.authorize(
        CallRequest(
            args.account,
            args.call_id or f"cli-{uuid.uuid4().hex[:16]}",
            args.to,
            args.caller,
            switch=args.switch or "",
        )
    )
    out = grant.as_dict()
    out["reserved"] = format_micro(grant.reserved)
    print_json(out)


async def cmd_finish(s: Services, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    answered = args.billsec > 0 and not args.unanswered
    settlement = await s.ledger.finish(
        args.account,
        args.call_id,
        outcome=Outcome(
            answered,
            args.billsec if answered else 0,
            now,
            "ANSWER" if answered else "NOANSWER",
            args.cause,
            dialled=args.to or "",
        ),
        switch=args.switch or "",
    )
    print_json(
        {
            "call_id": settlement.call_id,
            "status": settlement.status,
            "cost": format_micro(settlement.cost),
            "rated_cost": format_micro(settlement.rated_cost),
            "billable_seconds": settlement.billable_seconds,
        }
    )


async def cmd_calls_list(s: Services, args: argparse.Namespace) -> None:
    calls = []
    for r in await s.ledger.open_sessions():
        if args.account and r.get("account") != args.account:
            continue
        calls.append(
            {
                "call_id": r.get("call_id"),
                "switch": r.get("switch"),
                "account": r.get("account"),
                "to": r.get("e164"),
                "class": r.get("class"),
                "control": r.get("control") or "dial",
                "granted_s": int(r.get("granted") or 0),
                "reserved": format_micro(int(r.get("reserved") or 0)),
                "authorized_at": _iso(r.get("authorized_at")),
                "answered_at": _iso(r.get("answered_at")),
            }
        )
    print_json(sorted(calls, key=lambda c: str(c["authorized_at"])))


async def cmd_calls_hangup(s: Services, args: argparse.Namespace) -> None:
    from switch.ari import AriClient, AriError, AriSettings

    ari_settings = AriSettings.from_env()
    if not ari_settings.enabled:
        raise CliError("TOLLGATE_ARI_URL is not set: hanging up needs Asterisk's ARI")
    # ARI reaches this switch's Asterisk: only this switch's calls can be hung up there
    found = await s.ledger.running(args.call_id, account=args.account or "")
    if len(found) > 1:
        accounts = sorted(r.get("account", "") for r in found)
        raise CliError(f"call {args.call_id!r} is running for accounts {accounts}: give --account")
    target = found[0].get("a_chan") or args.call_id if found else args.call_id
    ari = AriClient(ari_settings)
    try:
        done = await ari.hangup(target)
    except AriError as exc:
        raise CliError(f"Asterisk refused: {exc}", EXIT_UNAVAILABLE) from None
    finally:
        await ari.close()
    if not done:
        raise CliError(f"no running call {args.call_id!r}")
    print_json({"call_id": args.call_id, "hung_up": True})


def _iso(ms: str | None) -> str | None:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat() if ms else None


async def cmd_sweep(s: Services, args: argparse.Namespace) -> None:
    from switch.ami import AmiError, AmiSettings
    from switch.parking import ParkingLot

    # As serve's sweeper: with AMI set, collect parked outcomes first and expire only calls
    # whose outcome cannot be waiting in AstDB any more.
    due: int | None = None
    ami = AmiSettings.from_env()
    if ami.enabled:
        parking = ParkingLot(ami, s.ledger)
        with contextlib.suppress(AmiError):
            await parking.collect()
        due = int(parking.clear_since * 1000) if parking.clear_since is not None else 0
    swept = await s.ledger.sweep_counted(due_before_ms=due)
    print_json({"released": swept.released, "estimated": swept.estimated})


def _money(text: str | None, what: str) -> int:
    if text is None:
        return 0
    try:
        return parse_micro(text)
    except MoneyError as exc:
        raise CliError(f"{what}: {exc}") from None


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tollgate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="normalise and classify a dialled number")
    c.add_argument("number")
    c.add_argument("--country", default="PL")
    c.set_defaults(sync=cmd_classify)

    r = sub.add_parser("rate", help="rate a call with a deck file")
    r.add_argument("--deck", required=True, help="path of the deck's TOML manifest")
    r.add_argument("--to", required=True)
    r.add_argument("--at", help="answer time, ISO 8601 (no zone = the deck's zone); default now")
    r.add_argument("--seconds", type=whole_number, required=True)
    r.add_argument("--country", default="PL")
    r.set_defaults(sync=cmd_rate)

    d = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    d.add_parser("upgrade", help="apply pending migrations").set_defaults(run=cmd_db_upgrade)

    dk = sub.add_parser("deck", help="rate decks").add_subparsers(dest="deck", required=True)
    di = dk.add_parser("import", help="validate and store a deck as a new current version")
    di.add_argument("path")
    di.set_defaults(run=cmd_deck_import)
    dk.add_parser("list").set_defaults(run=cmd_deck_list)
    ds = dk.add_parser("show")
    ds.add_argument("name")
    ds.add_argument("--version", type=whole_number)
    ds.set_defaults(run=cmd_deck_show)

    a = sub.add_parser("account", help="accounts").add_subparsers(dest="account", required=True)
    ac = a.add_parser("create")
    ac.add_argument("id")
    ac.add_argument("--kind", choices=[k.value for k in AccountKind], default="prepaid")
    ac.add_argument("--currency", default="PLN")
    ac.add_argument("--country", default="PL")
    ac.add_argument("--timezone", default="Europe/Warsaw")
    ac.add_argument("--deck")
    ac.add_argument("--credit-limit")
    ac.add_argument("--max-calls", type=whole_number, default=10)
    ac.add_argument("--cps", type=whole_number, default=2)
    ac.add_argument("--daily-cap")
    ac.add_argument("--allow-premium", action="store_true")
    ac.add_argument("--allow-high-risk", action="store_true")
    ac.add_argument("--block", action="append", default=[], metavar="PREFIX")
    ac.set_defaults(run=cmd_account_create)
    for name, fn in (("show", cmd_account_show),):
        x = a.add_parser(name)
        x.add_argument("id")
        x.set_defaults(run=fn)
    a.add_parser("list").set_defaults(run=cmd_account_list)
    au = a.add_parser("update")
    au.add_argument("id")
    au.add_argument("--deck")
    au.add_argument("--credit-limit")
    au.add_argument("--daily-cap")
    au.add_argument("--max-calls", type=whole_number)
    au.add_argument("--cps", type=whole_number)
    for flag in ("allow-premium", "allow-high-risk", "invoice-overdue"):
        au.add_argument(f"--{flag}", type=_bool, metavar="yes|no")
    au.add_argument(
        "--block",
        action="append",
        metavar="PREFIX",
        help="replaces the blocked prefixes; --block '' clears them",
    )
    au.set_defaults(run=cmd_account_update)
    at = a.add_parser("topup", help="add money (a ledger entry)")
    at.add_argument("id")
    at.add_argument("amount")
    at.add_argument("--kind", choices=["topup", "payment", "adjustment", "fee"], default="topup")
    at.add_argument("--reference", help="external id (payment id); repeating it adds nothing")
    at.add_argument("--note", default="")
    at.set_defaults(run=cmd_account_topup)
    for action in ("suspend", "resume", "close"):
        x = a.add_parser(action)
        x.add_argument("id")
        x.add_argument("--reason")
        x.set_defaults(run=cmd_account_status, action=action)
    sy = a.add_parser("sync", help="re-mirror settings and apply pending entries to Redis")
    sy.add_argument("id", nargs="?")
    sy.set_defaults(run=cmd_account_sync)

    z = sub.add_parser("authorize", help="authorize a call (reserves credit like a real call)")
    z.add_argument("--account", required=True)
    z.add_argument("--to", required=True)
    z.add_argument("--call-id")
    z.add_argument("--caller", default="")
    z.add_argument("--switch", help="the switch the call id is from (default: this host's)")
    z.set_defaults(run=cmd_authorize, pg=False)

    f = sub.add_parser("finish", help="finish a call: debit its rated cost, write its CDR")
    f.add_argument("--account", required=True)
    f.add_argument("--call-id", required=True)
    f.add_argument("--billsec", type=whole_number, required=True)
    f.add_argument("--unanswered", action="store_true")
    f.add_argument("--cause", default="16")
    f.add_argument("--to", help="dialled number, for a call that was never authorized")
    f.add_argument("--switch", help="the switch the call id is from (default: this host's)")
    f.set_defaults(run=cmd_finish, pg=False)

    sub.add_parser("sweep", help="release reservations of calls that never finished").set_defaults(
        run=cmd_sweep, pg=False
    )
    cl = sub.add_parser("calls", help="running calls").add_subparsers(dest="calls", required=True)
    ls = cl.add_parser("list", help="calls the ledger holds open")
    ls.add_argument("--account")
    ls.set_defaults(run=cmd_calls_list, pg=False)
    hu = cl.add_parser("hangup", help="hang up a running call (through ARI)")
    hu.add_argument("call_id")
    hu.add_argument("--account", help="whose call, when accounts share the call id")
    hu.set_defaults(run=cmd_calls_hangup, pg=False)

    cw = sub.add_parser("cdr-writer", help="move CDRs from the ledger's streams to PostgreSQL")
    cw.add_argument("--once", action="store_true", help="drain what is there, then exit")
    cw.set_defaults(sync=cmd_cdr_writer)

    from abuse.cli import register as register_abuse
    from billing.cli import register as register_billing
    from cdr.reconcile import register as register_reconcile
    from panel_api.cli import register as register_panel

    register_abuse(sub)
    register_panel(sub)
    register_billing(sub)
    register_reconcile(sub)

    sv = sub.add_parser("serve", help="run the FastAGI server, sweeper and metrics endpoint")
    sv.set_defaults(sync=cmd_serve)
    return p


def _bool(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"yes or no, not {text!r}")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "sync"):
            args.sync(args)
            return
        settings = Settings.from_env()
        run: Callable[[Services, argparse.Namespace], Awaitable[None]] = args.run
        run_async(_with_services(settings, run, args))
    except CliError as exc:
        _fail(str(exc), exc.code)
    except (InvalidNumber, DeckError, AccountError, MoneyError, SettingsError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except (AccountNotFound, DeckNotFound, ReferenceConflict) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except NoRate as exc:
        _fail(str(exc), EXIT_NO_RATE)
    except LedgerError as exc:
        _fail(str(exc), EXIT_BAD_INPUT if exc.code.startswith("BAD") else EXIT_UNAVAILABLE)
    except ServiceUnavailable as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except asyncpg.UndefinedTableError as exc:
        _fail(
            f"the database schema is older than this tollgate ({exc}): run `tollgate db upgrade`",
            EXIT_UNAVAILABLE,
        )
    except asyncpg.PostgresError as exc:
        _fail(f"PostgreSQL refused: {exc}", EXIT_UNAVAILABLE)
    except RedisError as exc:
        _fail(f"Redis refused: {exc}", EXIT_UNAVAILABLE)
    except OSError as exc:
        _fail(f"cannot reach a service: {exc}", EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


async def _with_services(
    settings: Settings,
    run: Callable[[Services, argparse.Namespace], Awaitable[None]],
    args: argparse.Namespace,
) -> None:
    async with services(settings, pg=getattr(args, "pg", True)) as s:
        await run(s, args)


if __name__ == "__main__":
    main()
