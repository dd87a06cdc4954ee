"""`tollgate abuse ...`: operators' view of findings, and the detector as a process.

`register(subparsers)` adds the commands to tollgate's parser; like tollgate's own, each is
`async (Services, argparse.Namespace)`, prints one JSON document, and reports bad input
(unknown finding, wrong status, bad thresholds) as the CLI's exit-2 errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal

from abuse import findings, overrides, warnings
from abuse.findings import FindingNotFound, FindingStateError, Status
from abuse.params import BadParams
from abuse.runner import AbuseDetector
from abuse.settings import AbuseSettings
from core.cliout import bad_input, now_of, print_json
from notify.settings import NotifySettings
from runtime.services import Services


def _who(args: argparse.Namespace) -> str:
    return str(args.by or getpass.getuser())


async def cmd_list(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    found = await findings.list_findings(
        s.pool,
        account=args.account,
        status=Status(args.status) if args.status else None,
        rule=args.rule,
        limit=args.limit,
        closure=args.closure,
    )
    print_json([f.as_dict() for f in found])


async def cmd_show(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FindingNotFound):
        f = await findings.get(s.pool, args.id)
    async with s.pool.acquire() as conn:
        events = await findings.timeline(conn, f.id)
    print_json({**f.as_dict(), "timeline": [e.as_dict() for e in events]})


async def cmd_closure(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    now = now_of(args.now)
    with bad_input(FindingNotFound, FindingStateError):
        f = await warnings.decide_closure(
            s.pool, s.accounts, args.id, args.decision == "accept", _who(args), args.reason, now
        )
    print_json(f.as_dict())


async def cmd_deadlines(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    done = await warnings.enforce(s.pool, s.accounts, NotifySettings.from_env(), now_of(args.now))
    print_json({"suspended": [{"finding": f.id, "account": f.account} for f in done]})


async def cmd_ack(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FindingNotFound, FindingStateError, BadParams):
        print_json((await findings.acknowledge(s.pool, args.id, _who(args), args.reason)).as_dict())


async def cmd_lift(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FindingNotFound, FindingStateError, BadParams):
        f, resumed = await findings.lift(
            s.pool, s.accounts, args.id, _who(args), args.reason, args.false_alarm
        )
    print_json({**f.as_dict(), "account_resumed": resumed})


async def cmd_close(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FindingNotFound, FindingStateError, BadParams):
        print_json((await findings.close(s.pool, args.id, _who(args), args.reason)).as_dict())


async def cmd_override(s: Services, args: argparse.Namespace) -> None:
    assert s.pool is not None
    with bad_input(FindingNotFound, FindingStateError, BadParams):
        if args.clear:
            print_json({"cleared": await overrides.clear_override(s.pool, args.account, args.rule)})
            return
        if args.params is None:
            found = [o.as_dict() for o in await overrides.list_overrides(s.pool, args.account)]
            print_json([o for o in found if o["rule"] == args.rule])
            return
        try:
            params = json.loads(args.params)
        except ValueError as exc:
            raise BadParams(args.rule, "*", f"not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise BadParams(args.rule, "*", "a JSON object of thresholds expected")
        o = await overrides.set_override(s.pool, args.account, args.rule, params)
        print_json({**o.as_dict(), "in_force": overrides.check(args.rule, params).as_dict()})


async def cmd_run(s: Services, args: argparse.Namespace) -> None:
    from core.exporter import standalone_metrics

    detector = AbuseDetector(s, AbuseSettings.from_env(), registry=standalone_metrics())
    try:
        if args.once:
            print_json({"processed": await detector.drain_once()})
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await detector.run(stop)
        print_json({"stopped": True})
    finally:
        await detector.close()
