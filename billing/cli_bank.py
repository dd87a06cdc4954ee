"""`tollgate bill bank ...`: bank statements in, unmatched credits, assignment."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from billing.bank import assign, import_credits, unmatched
from billing.errors import BillingError
from billing.parties import PartyError, valid_iban
from billing.settings import BillingSettings
from billing.statements import parse_statement
from core.cliout import bad_input, now_of, print_json
from runtime.services import Services


async def cmd_import(s: Services, args: argparse.Namespace) -> None:
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        try:
            data = await asyncio.to_thread(Path(args.file).read_bytes)
        except OSError as e:
            raise BillingError(args.file, f"cannot read: {e.strerror}") from None
        credits = parse_statement(data, Path(args.file).name)
        report = await import_credits(
            s.accounts, credits, Path(args.file).name, settings, now_of(args.now)
        )
    print_json(report.as_dict())


async def cmd_unmatched(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        print_json(await unmatched(conn))


async def cmd_assign(s: Services, args: argparse.Namespace) -> None:
    settings = BillingSettings.from_env()
    with bad_input(BillingError):
        result = await assign(
            s.accounts, args.bank_ref, args.account, args.by, settings, now_of(args.now)
        )
    print_json(result.as_dict())


async def cmd_virtual(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(BillingError, PartyError):
        iban = valid_iban(args.iban)
        await s.accounts.get(args.account)
        async with s.pool.acquire() as conn:
            owner = await conn.fetchval(
                "insert into virtual_accounts (iban, account) values ($1, $2)"
                " on conflict (iban) do update set account = virtual_accounts.account"
                " returning account",
                iban,
                args.account,
            )
        if owner != args.account:
            raise BillingError("iban", f"{iban} already belongs to account {owner}")
    print_json({"iban": iban, "account": args.account})
