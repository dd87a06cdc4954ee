"""The handlers of tollgate's own sub-commands (parsed by tollgate/cli.py, which imports this
module only when one of them runs)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import db
from core.cliout import (
    EXIT_UNAVAILABLE,
    CliError,
    instant,
    print_json,
)
from core.loop import run_async
from core.progress import ProgressBar
from rating.accounts import Account, AccountKind, AccountStatus
from rating.deck import DeckError, deck_digest, parse_head, read_manifest
from rating.deck_import import import_stream
from rating.deck_store import (
    current_if_unchanged,
    list_decks,
    load_deck_version,
    publish_stored,
    published_version,
)
from rating.ledger import CallRequest, Outcome
from rating.money import MoneyError, format_micro, parse_micro
from runtime.services import Services, services
from runtime.settings import Settings


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    from tollgate.serve import serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_async(serve(Settings.from_env()))


def cmd_serve_worker(args: argparse.Namespace) -> None:
    import logging

    from tollgate.workers import serve_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_async(serve_worker(Settings.from_env(), args.index, args.parent))


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
        from rating.retag import ensure_layout
        from runtime.services import open_redis

        redis = open_redis(settings)
        await ensure_layout(redis, settings.keyspace)
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


def cmd_redis_retag(args: argparse.Namespace) -> None:
    """Move every account's keys from `--from` hash tags to TOLLGATE_SHARDS (see rating.retag).
    Opens Redis without the layout check: the layout is what it changes."""
    from rating.keys import Keyspace
    from rating.retag import retag
    from runtime.services import open_redis

    settings = Settings.from_env()

    async def run() -> None:
        redis = open_redis(settings)
        try:
            old = Keyspace(settings.keyspace.prefix, args.from_shards)
            done = await retag(redis, old, settings.keyspace)
        finally:
            await redis.aclose()
        print_json(
            {
                "from": old.shards,
                "to": settings.keyspace.shards,
                "moved": done.moved,
                "kept": done.kept,
                "streams_dropped": done.streams_dropped,
            }
        )

    run_async(run())


# -- commands with services ------------------------------------------------------------------


async def cmd_db_upgrade(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        applied = await db.upgrade(conn)
    print_json({"applied": applied})


async def cmd_deck_import(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    keys = s.settings.keyspace
    digest = deck_digest(args.path)  # an unchanged deck is recognised before any parsing
    async with s.pool.acquire() as conn:
        same = await current_if_unchanged(conn, digest)
        if same is not None:
            if await published_version(s.redis, keys, same.name) != same.version:
                await publish_stored(conn, s.redis, keys, same.name, same.version)
            print_json(
                {
                    "name": same.name,
                    "version": same.version,
                    "created": False,
                    "rows": same.rows,
                    "prefixes": same.prefixes,
                    "current": True,
                }
            )
            return
    now = datetime.now(UTC)  # the notice is given now (the edge reads the clock)
    effective_at = instant(args.effective_at, "--effective-at") if args.effective_at else None
    if args.force and not args.reason.strip():
        raise CliError("--force needs --reason (it is written to the audit log)")
    from billing import price_changes
    from billing.settings import BillingSettings

    force = price_changes.Force(args.by or getpass.getuser(), args.reason) if args.force else None
    guard = price_changes.guard(BillingSettings.from_env(), now, force)
    manifest, rates_path = read_manifest(Path(args.path))
    head = parse_head(manifest, str(args.path))
    try:
        rates = rates_path.open("rb")
    except FileNotFoundError:
        raise DeckError(str(rates_path), "file not found") from None
    with rates, ProgressBar(f"deck {head.name}: lines") as bar:
        async with s.pool.acquire() as conn:
            done = await import_stream(
                conn, head, manifest, rates, rates_file=str(rates_path), source=str(args.path),
                lines=digest.lines, progress=bar, redis=s.redis, keys=keys,
                effective_at=effective_at, guard=guard, reader_process=True,
            )  # fmt: skip
    async with s.pool.acquire() as conn:
        if not done.published:
            await publish_stored(conn, s.redis, keys, done.name, done.version)
        timing = await price_changes.outcome(conn, done.name, done.version)
    in_force = datetime.fromisoformat(timing["effective_at"]) <= now
    print_json({**done.as_dict(), **timing, "in_force": in_force})


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
    from billing.settings import BillingSettings

    account = Account(
        id=args.id,
        kind=AccountKind(args.kind),
        currency=args.currency,
        country=args.country.upper(),
        timezone=args.timezone or BillingSettings.from_env().timezone,
        deck=args.deck,
        credit_limit=_money(args.credit_limit, "--credit-limit"),
        max_calls=args.max_calls,
        cps=args.cps,
        inbound_max_calls=args.inbound_max_calls,
        inbound_cps=args.inbound_cps,
        daily_cap=_money(args.daily_cap, "--daily-cap"),
        allow_premium=args.allow_premium,
        allow_high_risk=args.allow_high_risk,
        blocked_prefixes=tuple(p.lstrip("+") for p in args.block),
    )
    created = await s.accounts.create(account)
    print_json(_account_view(created, (await s.accounts.live(created.id)).as_dict()))


async def cmd_account_import(s: Services, args: argparse.Namespace) -> None:
    from pathlib import Path

    from rating.account_import import import_accounts

    assert s.pool is not None
    done = await import_accounts(
        s.pool, s.redis, s.settings.keyspace, Path(args.path), datetime.now(UTC)
    )
    print_json({"created": done.created, "existing": done.existing, "mirrored": done.mirrored})


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
    names = ("max_calls", "cps", "inbound_max_calls", "inbound_cps")
    for name in (*names, "allow_premium", "allow_high_risk", "invoice_overdue"):
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
    if status is AccountStatus.CLOSED:  # its numbers go into quarantine with it
        from numbering.settings import NumberingSettings
        from numbering.store import NumberStore

        store = NumberStore(s.accounts.pool, s.accounts, NumberingSettings.from_env())
        account, released = await store.close_account(
            args.id, args.reason or "", at=datetime.now(UTC), actor="cli"
        )
        view = _account_view(account, (await s.accounts.live(args.id)).as_dict())
        print_json({**view, "numbers_released": released})
        return
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
    from switch.outcome_log import OutcomeLog, OutcomeLogError, OutcomeLogSettings

    # As serve's sweeper: with the outcome log set, read it first and expire only calls
    # whose outcome cannot be waiting in it any more.
    due: int | None = None
    settings = OutcomeLogSettings.from_env()
    if settings.enabled and s.pool is not None:
        outcomes = OutcomeLog(settings, s.ledger, s.pool)
        with contextlib.suppress(OutcomeLogError):
            await outcomes.collect()
        clear = outcomes.clear_since
        due = int(clear * 1000) if clear is not None else 0
    swept = await s.ledger.sweep_counted(due_before_ms=due)
    print_json({"released": swept.released, "estimated": swept.estimated})


def _money(text: str | None, what: str) -> int:
    if text is None:
        return 0
    try:
        return parse_micro(text)
    except MoneyError as exc:
        raise CliError(f"{what}: {exc}") from None


def run_with_services(args: argparse.Namespace) -> None:
    """Run an `async (Services, args)` command with this process's Redis and PostgreSQL."""
    run: Callable[[Services, argparse.Namespace], Awaitable[None]] = args.run
    run_async(_with_services(Settings.from_env(), run, args))


async def _with_services(
    settings: Settings,
    run: Callable[[Services, argparse.Namespace], Awaitable[None]],
    args: argparse.Namespace,
) -> None:
    async with services(settings, pg=getattr(args, "pg", True)) as s:
        await run(s, args)
