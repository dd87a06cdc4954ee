"""`tollgate bill ...` and `tollgate cdr rerate`: billing from the command line.

`register(subparsers)` adds the commands to tollgate's parser. Like tollgate's own, each is
`async (Services, argparse.Namespace)` and prints one JSON document (`bill listing --csv`
prints CSV); bad input is the CLI's exit-2 error. `--now` lets a run act as of another
moment (an ISO 8601 instant with a zone; core.cliout.now_of)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from billing.documents import Kind, by_number, documents_of
from billing.errors import BillingError
from billing.fees import subscribe, unsubscribe
from billing.ksef_state import ksef_states
from billing.listing import listing
from billing.payments import pay
from billing.period import Period
from billing.postpaid import invoice_statuses, today_of
from billing.rerate import rerate
from billing.run import bill_run
from billing.settings import BillingSettings
from cdr.export_format import DIALECTS
from core.cliout import EXIT_UNAVAILABLE, CliError, bad_input, instant, now_of, print_json
from core.pg import Conn
from rating.accounts import AccountKind
from rating.money import MoneyError, parse_micro
from runtime.services import Services


def _day(text: str | None, what: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BillingError(what, f"YYYY-MM-DD expected, got {text!r}") from None


async def cmd_run(s: Services, args: argparse.Namespace) -> None:
    settings = BillingSettings.from_env()
    with bad_input(BillingError, MoneyError):
        now = now_of(args.now)
        period = (
            Period.parse(args.period)
            if args.period
            else Period.of(now, settings.timezone).shifted(-1)
        )
        shard = _shard(args.shard)
        report = await bill_run(s.accounts, period, settings, now, shard=shard)
    print_json(report.as_dict())
    if report.failed:
        raise CliError(
            f"{len(report.failed)} account(s) not billed: {', '.join(sorted(report.failed))}"
            ' (see "failed" above); the others were; run again once mended',
            EXIT_UNAVAILABLE,
        )


def _shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' (0 <= I < N): this run bills only the accounts whose id hashes to I of N."""
    if not text:
        return None
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise BillingError("--shard", f"I/N with 0 <= I < N expected, got {text!r}")
    return int(index), int(count)


async def cmd_listing(s: Services, args: argparse.Namespace) -> None:
    with bad_input(BillingError, MoneyError):
        period = Period.parse(args.period)
    account = await s.accounts.get(args.account)
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        result = await listing(conn, account, period)
    if args.csv:
        sys.stdout.write(result.to_csv(DIALECTS[args.format]))
    else:
        print_json(result.as_dict())


async def cmd_invoices(s: Services, args: argparse.Namespace) -> None:
    settings = BillingSettings.from_env()
    account = await s.accounts.get(args.account)
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        docs = await documents_of(conn, account.id)
        statuses = {st.document.id: st for st in await invoice_statuses(conn, account.id)}
        ksef = await ksef_states(conn, [d.id for d in docs])
    today = today_of(now_of(args.now), settings)
    out = []
    for d in docs:
        view = {**d.as_dict(), "ksef": ksef.get(d.id)}
        st = statuses.get(d.id)
        if d.kind is Kind.TOPUP_INVOICE:
            view["status"] = "paid"
        elif st is not None and account.kind is AccountKind.POSTPAID:
            view.update(st.as_dict())
            overdue = st.overdue(today, settings.overdue_block_days)
            view["status"] = "paid" if not st.outstanding else "overdue" if overdue else "unpaid"
        out.append(view)
    print_json(out)


async def cmd_pay(s: Services, args: argparse.Namespace) -> None:
    settings = BillingSettings.from_env()
    with bad_input(BillingError, MoneyError):
        amount = parse_micro(args.amount)
        result = await pay(
            s.accounts,
            args.account,
            amount,
            args.reference,
            settings,
            now_of(args.now),
            args.note,
        )
    print_json(result.as_dict())


async def cmd_pdf(s: Services, args: argparse.Namespace) -> None:
    from billing.pdf import PdfSettings
    from billing.printing import document_pdf

    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        async with s.pool.acquire() as conn:
            doc, data = await document_pdf(conn, args.number, settings, PdfSettings.from_env())
    try:
        await asyncio.to_thread(Path(args.output).write_bytes, data)
    except OSError as e:
        raise CliError(f"-o: cannot write {args.output}: {e.strerror}") from None
    print_json({"number": doc.number, "file": args.output, "bytes": len(data)})


async def cmd_ksef(s: Services, args: argparse.Namespace) -> None:
    from billing.ksef_xml import fa3_xml
    from billing.printing import printable

    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        async with s.pool.acquire() as conn:
            p = await printable(conn, args.number, settings)
            xml = fa3_xml(p, settings.exemption_basis)
            if getattr(args, "upo", False):
                await _upo(conn, p.document.id, args, now_of(args.now))
                return
            if getattr(args, "send", False):
                from billing.ksef_send import KsefClientGateway, KsefSettings, submit

                gateway = KsefClientGateway(KsefSettings.from_env())
                verdict = await submit(conn, p.document.id, xml, gateway, now_of(args.now))
                print_json({"number": args.number, **verdict})
                return
    if not args.output:
        sys.stdout.write(xml.decode())
        return
    try:
        await asyncio.to_thread(Path(args.output).write_bytes, xml)
    except OSError as e:
        raise CliError(f"-o: cannot write {args.output}: {e.strerror}") from None
    print_json({"number": args.number, "file": args.output, "bytes": len(xml)})


async def _upo(conn: Conn, document_id: int, args: argparse.Namespace, now: datetime) -> None:
    """KSeF's UPO of an accepted document: fetched unless kept, written to -o when given."""
    from billing.ksef_send import KsefClientGateway, KsefSettings, fetch_upo

    gateway = KsefClientGateway(KsefSettings.from_env())
    state = await fetch_upo(conn, document_id, gateway, now)
    out = {"number": args.number, **state}
    if args.output and state["upo"] == "received":
        upo = await conn.fetchval(
            "select upo from ksef_submissions where document_id = $1", document_id
        )
        try:
            await asyncio.to_thread(Path(args.output).write_text, upo, "utf-8")
        except OSError as e:
            raise CliError(f"-o: cannot write {args.output}: {e.strerror}") from None
        out["file"] = args.output
    print_json(out)


async def cmd_ksef_pending(s: Services, args: argparse.Namespace) -> None:
    """Send what KSeF has not accepted yet and fetch the UPOs it has not given yet."""
    from billing.ksef_batch import ksef_pass
    from billing.ksef_send import KsefClientGateway, KsefSettings

    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        gateway = KsefClientGateway(KsefSettings.from_env())
        async with s.pool.acquire() as conn:
            report = await ksef_pass(conn, gateway, settings, now_of(args.now))
    print_json(report.as_dict())


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    """One document as issued, with where it stands in KSeF (number, UPO)."""
    from billing.ksef_state import ksef_states

    assert s.pool is not None
    with bad_input(BillingError):
        async with s.pool.acquire() as conn:
            doc = await by_number(conn, args.number)
            if doc is None:
                raise BillingError("number", f"no document {args.number!r}")
            ksef = (await ksef_states(conn, [doc.id])).get(doc.id)
    print_json({**doc.as_dict(), "ksef": ksef})


async def cmd_subscribe(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError, MoneyError):
        fee = parse_micro(args.fee)
        since = _day(args.start, "--from", today_of(now_of(args.now), settings))
        await s.accounts.get(args.account)
        async with s.pool.acquire() as conn:
            sub = await subscribe(conn, args.account, args.name, fee, since)
    print_json(sub.as_dict())


async def cmd_unsubscribe(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError, MoneyError):
        on = _day(args.on, "--on", today_of(now_of(args.now), settings))
        async with s.pool.acquire() as conn:
            sub = await unsubscribe(conn, args.account, args.name, on)
    print_json(sub.as_dict())


async def cmd_outage_record(s: Services, args: argparse.Namespace) -> None:
    import getpass

    from billing import outages

    assert s.pool is not None
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        now = now_of(args.now)
        start = instant(args.start, "--start", ZoneInfo(settings.timezone))
        end = instant(args.end, "--end", ZoneInfo(settings.timezone))
        async with s.pool.acquire() as conn:
            outage = await outages.record(
                conn, start, end, args.account, args.reason, args.by or getpass.getuser(), now
            )
    print_json(outage.as_dict())


async def cmd_outage_compensate(s: Services, args: argparse.Namespace) -> None:
    from billing import outages

    assert s.pool is not None
    with bad_input(BillingError):
        now = now_of(args.now)
        async with s.pool.acquire() as conn:
            rule = BillingSettings.from_env().outage_rule
            done = await outages.compensate(s.accounts, conn, args.id, now, rule)
    print_json({"outage": args.id, "compensations": [c.as_dict() for c in done]})


async def cmd_outage_rule(s: Services, args: argparse.Namespace) -> None:
    """An account's own compensation rule; `default` removes it (TOLLGATE_OUTAGE_RULE)."""
    import getpass

    from billing import outage_rules

    assert s.pool is not None
    with bad_input(BillingError):
        now = now_of(args.now)
        async with s.pool.acquire() as conn:
            if args.rule == "default":
                removed = await outage_rules.clear_rule(conn, args.account)
                print_json({"account": args.account, "rule": "default", "removed": removed})
                return
            got = await outage_rules.set_rule(
                conn, args.account, args.rule, args.by or getpass.getuser(), now
            )
    print_json(got.as_dict())


async def cmd_outage_rules(s: Services, args: argparse.Namespace) -> None:
    from billing import outage_rules

    assert s.pool is not None
    async with s.pool.acquire() as conn:
        got = await outage_rules.list_rules(conn)
    print_json(
        {
            "default": BillingSettings.from_env().outage_rule,
            "accounts": [r.as_dict() for r in got],
        }
    )


async def cmd_outage_list(s: Services, args: argparse.Namespace) -> None:
    from billing import outages

    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json([o.as_dict() for o in await outages.list_outages(conn)])


async def cmd_trial_start(s: Services, args: argparse.Namespace) -> None:
    from billing import trials

    assert s.pool is not None
    with bad_input(BillingError, MoneyError):
        now = now_of(args.now)
        credit = parse_micro(args.credit)
        async with s.pool.acquire() as conn:
            t = await trials.start(
                s.accounts, conn, args.account, credit, trials.TrialSettings.from_env(), now
            )
    print_json(t.as_dict())


async def cmd_trial_list(s: Services, args: argparse.Namespace) -> None:
    from billing import trials

    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json([t.as_dict() for t in await trials.list_trials(conn)])


async def cmd_trial_advance(s: Services, args: argparse.Namespace) -> None:
    from billing import trials

    assert s.pool is not None
    with bad_input(BillingError):
        now = now_of(args.now)
    print_json(await trials.advance(s.accounts, s.pool, now))


async def cmd_rerate(s: Services, args: argparse.Namespace) -> None:
    if args.buy or args.carrier:
        await _rerate_buy(s, args)
        return
    settings = BillingSettings.from_env()
    with bad_input(BillingError, MoneyError):
        if not (args.account and args.deck):
            raise BillingError("--account", "the sell side needs --account and --deck")
        period = Period.parse(args.period)
        name, _, version = args.deck.partition(":")
        if version and not version.isdigit():
            raise BillingError("--deck", f"NAME or NAME:VERSION, got {args.deck!r}")
        result = await rerate(
            s.accounts,
            args.account,
            period,
            name,
            int(version) if version else None,
            now=now_of(args.now),
            apply=args.apply,
            settings=settings,
        )
    print_json(result.as_dict())


async def _rerate_buy(s: Services, args: argparse.Namespace) -> None:
    """`cdr rerate --buy`: the buy side of routed calls (cdr.buy_rerate)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cdr.buy_rerate import BuyRerateError, buy_rerate

    assert s.pool is not None
    with bad_input(BillingError, BuyRerateError):
        try:
            ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise BillingError("--tz", f"unknown time zone {args.tz!r}") from None
        start, end = Period.parse(args.period).bounds(args.tz)
        name, _, version = (args.deck or "").partition(":")
        if version and not version.isdigit():
            raise BillingError("--deck", f"NAME or NAME:VERSION, got {args.deck!r}")
        async with s.pool.acquire() as conn:
            result = await buy_rerate(
                conn, start, end, carrier=args.carrier or "", deck=name,
                version=int(version) if version else None, account=args.account or "",
                apply=args.apply, now=now_of(args.now), actor=args.by,
            )  # fmt: skip
    print_json({"period": args.period, **result.as_dict()})
