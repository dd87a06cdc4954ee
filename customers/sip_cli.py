"""`tollgate sip ...` handlers: `async (Services, argparse.Namespace)`, one JSON document on
stdout each. A password appears only in the output of `create` and `passwd`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from core.cliout import bad_input, print_json
from customers import sip
from customers.sip_settings import SipSettings
from runtime.services import Services


async def cmd_create(s: Services, args: argparse.Namespace) -> None:
    settings = SipSettings.from_env()
    assert s.pool is not None
    with bad_input(sip.SipError):
        async with s.pool.acquire() as conn:
            creds = await sip.create(conn, settings, args.account, args.login, args.max_contacts)
    await sip.publish(s.accounts, creds.login.account)
    print_json(creds.as_dict())


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        logins = await sip.list_logins(conn, datetime.now(UTC), args.account)
    print_json([x.as_dict() for x in logins])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(sip.SipError):
        async with s.pool.acquire() as conn:
            login = await sip.get(conn, args.login, datetime.now(UTC))
    print_json(login.as_dict())


async def cmd_passwd(s: Services, args: argparse.Namespace) -> None:
    settings = SipSettings.from_env()
    assert s.pool is not None
    with bad_input(sip.SipError):
        async with s.pool.acquire() as conn:
            creds = await sip.set_password(conn, settings, args.login)
    print_json(creds.as_dict())


async def _status(s: Services, login: str, status: str, reason: str) -> None:
    settings = SipSettings.from_env()
    assert s.pool is not None
    with bad_input(sip.SipError):
        async with s.pool.acquire() as conn:
            changed = await sip.set_status(conn, settings, login, status, reason)
    await sip.publish(s.accounts, changed.account)
    print_json(changed.as_dict())


async def cmd_disable(s: Services, args: argparse.Namespace) -> None:
    await _status(s, args.login, "disabled", args.reason)


async def cmd_enable(s: Services, args: argparse.Namespace) -> None:
    await _status(s, args.login, "active", "")


async def cmd_delete(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(sip.SipError):
        async with s.pool.acquire() as conn:
            account = await sip.delete(conn, args.login)
    await sip.publish(s.accounts, account)
    print_json({"login": args.login, "deleted": True})


async def cmd_resync(s: Services, args: argparse.Namespace) -> None:
    settings = SipSettings.from_env()
    assert s.pool is not None
    async with s.pool.acquire() as conn:
        count = await sip.resync(conn, settings)
    print_json({"resynced": count})
