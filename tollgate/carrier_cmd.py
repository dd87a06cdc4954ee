"""`tollgate carrier ...` and `tollgate routes` handlers: each is `async (Services,
argparse.Namespace)` and prints one JSON document; bad input is the CLI's exit-2 error."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from core.cliout import CliError, print_json
from rating.carrier_store import (
    CarrierStore,
    carrier_history,
    get_carrier,
    list_carriers,
    list_rules,
)
from rating.carriers import Carrier, CarrierError
from rating.route_rules import RouteRule
from runtime.services import Services


def _instant(text: str | None, flag: str) -> datetime:
    """An ISO 8601 option (a naive time is UTC), else the wall clock: read here, at the edge."""
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CarrierError(flag, f"not an ISO 8601 date-time: {text!r}") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def _store(s: Services) -> CarrierStore:
    assert s.pool is not None
    return CarrierStore(s.pool, s.redis, s.settings.keyspace)


async def cmd_create(s: Services, args: argparse.Namespace) -> None:
    carrier = Carrier(
        args.name, args.deck, args.trunk, args.priority, args.max_calls, args.cps,
        csv_columns=args.csv_columns,
    )
    made = await _store(s).create(carrier, at=_instant(args.now, "--now"), actor=args.by)
    print_json(made.as_dict())


async def cmd_update(s: Services, args: argparse.Namespace) -> None:
    names = ("deck", "trunk", "priority", "max_calls", "cps", "disabled", "csv_columns")
    changes: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if not changes:
        raise CliError("nothing to change: give --deck, --trunk, --priority, ... ")
    done = await _store(s).update(args.name, changes, at=_instant(args.now, "--now"),
                                  actor=args.by)  # fmt: skip
    print_json(done.as_dict())


async def cmd_disable(s: Services, args: argparse.Namespace) -> None:
    done = await _store(s).update(args.name, {"disabled": True},
                                  at=_instant(args.now, "--now"), actor=args.by)  # fmt: skip
    print_json(done.as_dict())


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    print_json([c.as_dict() for c in await list_carriers(s.pool)])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    found = await get_carrier(s.pool, args.name)
    print_json({**found.as_dict(), "history": await carrier_history(s.pool, args.name)})


async def cmd_sync(s: Services, args: argparse.Namespace) -> None:
    print_json({"mirrored": await _store(s).mirror()})


async def cmd_routes(s: Services, args: argparse.Namespace) -> None:
    """The carriers a call of the account to the number would try, as the authorization
    computes them from what Redis holds (`refused`: why none would)."""
    from rating.route_preview import RoutePreviewError, preview

    assert s.pool is not None
    await s.accounts.get(args.account)  # an unknown account: the usual exit-2 error
    at = _instant(args.at, "--at")
    try:
        plan = await preview(s.pool, s.redis, s.settings.keyspace, args.account, args.to, at,
                             args.seconds, no_rate_refused=False)  # fmt: skip
    except RoutePreviewError as exc:
        raise CliError(str(exc)) from None
    print_json(plan)


def _month(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """The month of `--period` in `--tz`; without `--tz`, in the billing zone (the panel's
    reports use the same helper, so both give the same answer)."""
    from zoneinfo import ZoneInfoNotFoundError

    from billing.errors import BillingError
    from billing.period import Period
    from billing.report_period import report_bounds
    from billing.settings import BillingSettings

    try:
        return report_bounds(Period.parse(args.period), args.tz, BillingSettings.from_env())
    except (BillingError, ZoneInfoNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


async def cmd_reconcile(s: Services, args: argparse.Namespace) -> None:
    from cdr.carrier_reconcile import (
        CarrierFileError,
        carrier_reconcile,
        columns,
        read_calls,
    )
    from rating.money import MoneyError, parse_micro

    start, end = _month(args)
    assert s.pool is not None
    stored = (await get_carrier(s.pool, args.name)).csv_columns
    try:
        tolerance = parse_micro(args.tolerance_cost)
        theirs = read_calls(args.csv, columns(args.columns, stored), args.country, args.tz)
    except (CarrierFileError, MoneyError) as exc:
        raise CliError(str(exc)) from None
    async with s.pool.acquire() as conn:
        found = await carrier_reconcile(
            conn, args.name, theirs, start, end, window_s=args.window_s,
            tolerance_s=args.tolerance_s, tolerance_cost=tolerance,
        )  # fmt: skip
    print_json({"period": args.period, **found})


async def cmd_report_margin(s: Services, args: argparse.Namespace) -> None:
    from cdr.margin import margin_report

    start, end = _month(args)
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json({"period": args.period, **await margin_report(conn, start, end)})


async def cmd_report_carriers(s: Services, args: argparse.Namespace) -> None:
    from cdr.carrier_quality import carrier_quality

    start, end = _month(args)
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json({"period": args.period, "carriers": await carrier_quality(conn, start, end)})


async def cmd_rule_set(s: Services, args: argparse.Namespace) -> None:
    rule = RouteRule(args.account or "", args.prefix or "", tuple(args.pin), tuple(args.exclude),
                     args.allow_loss)  # fmt: skip
    done = await _store(s).set_rule(rule, at=_instant(args.now, "--now"), actor=args.by)
    print_json(done.as_dict() if done else {**rule.checked().as_dict(), "removed": True})


async def cmd_rule_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    print_json([r.as_dict() for r in await list_rules(s.pool)])
