"""`tollgate fx ...` handlers: each is `async (Services, argparse.Namespace)` and prints one
JSON document; bad input is the CLI's exit-2 error. Every change rewrites the copy in Redis
(with the carriers') so routing sees it within a second."""

from __future__ import annotations

import argparse

from core.cliout import CliError, bad_input, instant, now_of, print_json
from rating.carrier_store import CarrierStore
from rating.fx import FxError, FxRate, FxTable, parse_currency
from rating.fx_store import list_fx, set_fx
from rating.money import MoneyError, format_micro, parse_micro
from runtime.services import Services


def _store(s: Services) -> CarrierStore:
    assert s.pool is not None
    return CarrierStore(s.pool, s.redis, s.settings.keyspace)


async def cmd_set(s: Services, args: argparse.Namespace) -> None:
    with bad_input(FxError):
        at = now_of(args.now)
        rate = FxRate(args.base, args.quote, args.rate,
                      instant(args.effective_at, "--effective-at"))  # fmt: skip
        assert s.pool is not None
        async with s.pool.acquire() as conn, conn.transaction():
            done, previous = await set_fx(conn, rate, at=at, actor=args.by)
    await _store(s).mirror()
    print_json({**done.as_dict(), "replaced": previous})


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FxError):
        base = parse_currency(args.base, "base") if args.base else ""
        quote = parse_currency(args.quote, "quote") if args.quote else ""
    print_json([r.as_dict() for r in await list_fx(s.pool, base, quote)])


async def cmd_import(s: Services, args: argparse.Namespace) -> None:
    from rating.fx_nbp import read_nbp

    with bad_input(FxError):
        at = now_of(args.now)
        effective = instant(args.effective_at, "--effective-at") if args.effective_at else None
        rates = read_nbp(args.file, effective)  # all read and checked before any is stored
    assert s.pool is not None
    changed = 0
    async with s.pool.acquire() as conn, conn.transaction():
        for rate in rates:
            _, previous = await set_fx(conn, rate, at=at, actor=args.by, source="NBP A")
            changed += previous != rate.rate
    await _store(s).mirror()
    print_json({"rates": len(rates), "changed": changed,
                "effective_at": sorted({r.effective_at.isoformat() for r in rates})})  # fmt: skip


async def cmd_convert(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FxError, MoneyError):
        amount = parse_micro(args.amount)
        base, quote = parse_currency(args.base, "base"), parse_currency(args.quote, "quote")
        at = now_of(args.at, "--at")
    table = FxTable.of(await list_fx(s.pool))
    got = table.convert(amount, base, quote, at)
    if got is None:
        raise CliError(f"no {base}->{quote} rate in force at {at.isoformat()}")
    factor = table.factor(base, quote, at)
    print_json({"amount": format_micro(amount), "base": base, "quote": quote,
                "at": at.isoformat(), "factor": str(factor), "converted": format_micro(got),
                "converted_micro": got})  # fmt: skip
