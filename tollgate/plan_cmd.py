"""`tollgate plan ...` handlers: each is `async (Services, argparse.Namespace)` and prints one
JSON document; bad input is the CLI's exit-2 error."""

from __future__ import annotations

import argparse
from typing import Any

from core.cliout import CliError, instant, now_of, print_json
from rating.money import MoneyError, parse_micro
from rating.plan_store import PlanStore
from rating.plans import Plan, PlanError, parse_allowance
from runtime.services import Services


def _store(s: Services) -> PlanStore:
    return PlanStore(s.accounts)


def _fee(text: str) -> int:
    try:
        return parse_micro(text)
    except MoneyError as exc:
        raise PlanError("--fee", str(exc)) from None


async def cmd_create(s: Services, args: argparse.Namespace) -> None:
    allowances = tuple(parse_allowance(a) for a in args.allowance)
    plan = Plan(args.name, _fee(args.fee), args.currency, allowances)
    made = await _store(s).create(plan, at=now_of(args.now), actor=args.by)
    print_json(made.as_dict())


async def cmd_update(s: Services, args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {}
    if args.fee is not None:
        changes["fee"] = _fee(args.fee)
    if args.allowance:
        changes["allowances"] = tuple(parse_allowance(a) for a in args.allowance)
    if not changes:
        raise CliError("nothing to change: give --fee or --allowance")
    done = await _store(s).update(args.name, changes, at=now_of(args.now), actor=args.by)
    print_json(done.as_dict())


async def cmd_disable(s: Services, args: argparse.Namespace) -> None:
    print_json((await _store(s).disable(args.name, at=now_of(args.now), actor=args.by)).as_dict())


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    print_json([p.as_dict() for p in await _store(s).all()])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    store = _store(s)
    plan = await store.get(args.name)
    print_json({**plan.as_dict(), "history": await store.history(args.name)})


async def cmd_assign(s: Services, args: argparse.Namespace) -> None:
    start = instant(args.start, "--start")
    made = await _store(s).assign(args.account, args.plan, start, at=now_of(args.now),
                                  actor=args.by)  # fmt: skip
    print_json(made.as_dict())


async def cmd_unassign(s: Services, args: argparse.Namespace) -> None:
    end = instant(args.end, "--end")
    done = await _store(s).unassign(args.account, end, at=now_of(args.now), actor=args.by)
    print_json(done.as_dict())


async def cmd_account(s: Services, args: argparse.Namespace) -> None:
    store = _store(s)
    at = now_of(args.now)
    print_json({
        "account": args.account,
        "plans": [a.as_dict() for a in await store.assignments(args.account)],
        "bundles": await store.usage(args.account, at),
    })  # fmt: skip
