"""`tollgate complaint ...` handlers: `async (Services, argparse.Namespace)`, one JSON
document on stdout each."""

from __future__ import annotations

import argparse
from zoneinfo import ZoneInfo

from billing import complaints
from billing.errors import BillingError
from billing.settings import BillingSettings
from core.cliout import bad_input, instant, now_of, print_json
from rating.money import MoneyError, parse_micro
from runtime.services import Services


def _settings() -> tuple[BillingSettings, int]:
    return BillingSettings.from_env(), complaints.answer_days_from_env()


def _money(text: str, what: str) -> int:
    try:
        return parse_micro(text)
    except MoneyError as exc:
        raise BillingError(what, str(exc)) from None


async def cmd_file(s: Services, args: argparse.Namespace) -> None:
    settings, days = _settings()
    assert s.pool is not None
    with bad_input(BillingError):
        filing = complaints.Filing(
            args.account,
            instant(args.event_at, "--event-at", ZoneInfo(settings.timezone)),
            args.description,
            tuple(args.call),
            args.invoice,
            args.period,
            _money(args.requested, "--requested"),
        )
        async with s.pool.acquire() as conn:
            c = await complaints.file(conn, filing, days, now_of(args.now))
    print_json(c.as_dict())


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        found = await complaints.list_complaints(conn, args.account, args.status)
    print_json([c.as_dict() for c in found])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(BillingError):
        async with s.pool.acquire() as conn:
            print_json((await complaints.get(conn, args.id)).as_dict())


async def cmd_ack(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(BillingError):
        async with s.pool.acquire() as conn:
            await complaints.get(conn, args.id)
            c = await complaints.acknowledge(conn, args.id, now_of(args.now))
    print_json(c.as_dict())


async def cmd_answer(s: Services, args: argparse.Namespace) -> None:
    settings, _ = _settings()
    assert s.pool is not None
    with bad_input(BillingError):
        credit = None if args.credit is None else _money(args.credit, "--credit")
        async with s.pool.acquire() as conn:
            c = await complaints.answer(
                s.accounts,
                conn,
                settings,
                args.id,
                args.decision == "accept",
                args.text,
                now_of(args.now),
                credit,
            )
    print_json(c.as_dict())


async def cmd_settle(s: Services, args: argparse.Namespace) -> None:
    settings, _ = _settings()
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        settled = await complaints.settle_overdue(s.accounts, conn, settings, now_of(args.now))
    print_json([c.as_dict() for c in settled])
