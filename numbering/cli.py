"""`tollgate number ...` handlers: each is `async (Services, argparse.Namespace)` and prints
one JSON document; bad input is the CLI's exit-2 error."""

from __future__ import annotations

import argparse

from core.cliout import bad_input, now_of, print_json
from numbering.model import NumberError, NumberStatus, NumberType
from numbering.settings import NumberingSettings
from numbering.store import NumberStore, get_number, list_numbers
from rating.money import MoneyError, parse_micro
from runtime.services import Services


def _store(s: Services) -> NumberStore:
    return NumberStore(s.postgres, s.accounts, NumberingSettings.from_env())


def _money(text: str, field: str) -> int:
    try:
        return parse_micro(text)
    except MoneyError as exc:
        raise NumberError(field, str(exc)) from None


async def cmd_add(s: Services, args: argparse.Namespace) -> None:
    did = await _store(s).add(
        args.number,
        carrier=args.carrier,
        monthly_cost=_money(args.cost, "cost"),
        monthly_price=_money(args.price, "price"),
        type=NumberType(args.type) if args.type else None,
        at=now_of(args.now),
        actor=args.by,
    )
    print_json(did.as_dict())


async def cmd_assign(s: Services, args: argparse.Namespace) -> None:
    did = await _store(s).assign(
        args.number, args.account, at=now_of(args.now), actor=args.by, caller_id=args.caller_id
    )
    print_json(did.as_dict())


async def cmd_release(s: Services, args: argparse.Namespace) -> None:
    did = await _store(s).release(
        args.number, at=now_of(args.now), actor=args.by, reason=args.reason
    )
    print_json(did.as_dict())


async def cmd_port_out(s: Services, args: argparse.Namespace) -> None:
    print_json(
        (await _store(s).port_out(args.number, at=now_of(args.now), actor=args.by)).as_dict()
    )


async def cmd_caller_id(s: Services, args: argparse.Namespace) -> None:
    await _store(s).set_caller_id(args.account, args.number, at=now_of(args.now))
    account = await s.accounts.get(args.account)
    print_json({"account": account.id, "caller_id": account.caller_id})


async def cmd_sweep(s: Services, args: argparse.Namespace) -> None:
    print_json({"returned_to_pool": await _store(s).sweep(now_of(args.now))})


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    status = NumberStatus(args.status) if args.status else None
    found = await list_numbers(s.postgres, status=status, account=args.account)
    print_json([d.as_dict() for d in found])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    with bad_input(NumberError):
        e164 = _store(s).canonical(args.number)
    did = await get_number(s.postgres, e164)
    events = await s.postgres.fetch(
        "select event, account, actor, detail, at from number_events where number = $1 order by id",
        e164,
    )
    history = [{**dict(e), "at": e["at"].isoformat()} for e in events]
    print_json({**did.as_dict(), "history": history})


async def cmd_sync(s: Services, args: argparse.Namespace) -> None:
    print_json({"routed": await _store(s).publish()})
