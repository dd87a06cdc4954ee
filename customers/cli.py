"""`tollgate customer ...` handlers: each is `async (Services, argparse.Namespace)` and
prints one JSON document; bad input is the CLI's exit-2 error."""

from __future__ import annotations

import argparse
from typing import Any

from core.cliout import now_of, print_json
from customers.model import EDITABLE_FIELDS, Customer, CustomerError, Verification
from customers.privacy import Retention, anonymise, export_personal_data
from customers.store import CustomerStore, accounts_of, get_customer, list_customers
from runtime.services import Services


def _store(s: Services) -> CustomerStore:
    return CustomerStore(s.postgres, s.accounts)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {f: getattr(args, f) for f in EDITABLE_FIELDS if getattr(args, f, None) is not None}


async def _view(s: Services, customer: Customer) -> dict[str, Any]:
    return {**customer.as_dict(), "accounts": await accounts_of(s.postgres, customer.id)}


async def cmd_create(s: Services, args: argparse.Namespace) -> None:
    given = _given(args)
    customer = Customer(
        id=args.id, legal_name=given.pop("legal_name"), email=given.pop("email"), **given
    )
    created = await _store(s).create(
        customer, at=now_of(args.now), actor=args.by, accounts=tuple(args.account)
    )
    print_json(await _view(s, created))


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    print_json(await _view(s, await get_customer(s.postgres, args.id)))


async def cmd_update(s: Services, args: argparse.Namespace) -> None:
    changes = _given(args)
    if not changes:
        raise CustomerError("update", "nothing to change")
    updated = await _store(s).update(args.id, at=now_of(args.now), actor=args.by, **changes)
    print_json(await _view(s, updated))


async def cmd_verify(s: Services, args: argparse.Namespace) -> None:
    updated = await _store(s).verify(
        args.id, Verification(args.status), at=now_of(args.now), actor=args.by, note=args.note
    )
    print_json(await _view(s, updated))


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    status = Verification(args.verification) if args.verification else None
    print_json([c.as_dict() for c in await list_customers(s.postgres, status)])


async def cmd_attach(s: Services, args: argparse.Namespace) -> None:
    await _store(s).attach(args.id, args.account, at=now_of(args.now), actor=args.by)
    print_json(await _view(s, await get_customer(s.postgres, args.id)))


async def cmd_export(s: Services, args: argparse.Namespace) -> None:
    print_json(await export_personal_data(s.postgres, args.id))


async def cmd_anonymise(s: Services, args: argparse.Namespace) -> None:
    if not 0 <= args.retention_months <= 600:
        raise CustomerError("--retention-months", "0..600")
    last = await anonymise(
        s.postgres,
        args.id,
        at=now_of(args.now),
        actor=args.by,
        retention=Retention(args.retention_months),
    )
    print_json({"customer": args.id, "anonymised": True, "last_activity": last.isoformat()})
