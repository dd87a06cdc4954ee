"""Emergency calls and the ARI session controller, on the real ledger (issue 17/18 follow-up).

An emergency call never enters Stasis: the dialplan sends 112/997/998/999 straight to Dial,
and a grant for any other emergency number carries no CONTROL=ari. Should one still be
held by the controller (adopted from a ledger record), neither the suspension watch nor
`hangup_account` cuts it, and no dead-man deadline is put on it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid

from rating.accounts import AccountStatus
from rating.ledger import CallRequest
from runtime.services import Services
from switch.ari import AriClient, AriSettings
from switch.fastagi import FastAgiAdapter, parse_grant
from switch.sessions import ControlSettings, Session, SessionController
from tests.conftest import AccountFactory

PLN = 1_000_000


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_ari() -> AriClient:
    """Every request fails (AriError): what the controller does is seen in its sessions."""
    return AriClient(AriSettings(url=f"http://127.0.0.1:{closed_port()}", request_timeout_s=0.5))


async def authorized(svc: Services, account: str, dialled: str) -> str:
    call_id = f"c-{uuid.uuid4().hex[:12]}"
    grant = await svc.ledger.authorize(CallRequest(account, call_id, dialled, "600100200"))
    assert grant.allowed, grant
    return call_id


async def test_an_emergency_grant_never_sends_the_call_to_stasis(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    adapter = FastAgiAdapter(svc.ledger, slice_s=300)  # ARI session control on
    for dialled, control in (("+48601234567", "ari"), ("112", "")):
        req = CallRequest(a.id, f"c-{uuid.uuid4().hex[:12]}", dialled, "600100200", cap_s=300)
        told = parse_grant(adapter.grant_value(await svc.ledger.authorize(req)))
        assert told["TOLLGATE_DECISION"] == "ALLOW", (dialled, told)
        assert told["TOLLGATE_CONTROL"] == control, (dialled, told)


async def test_the_suspension_watch_ends_the_account_s_calls_but_not_its_emergency_call(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    normal_id = await authorized(svc, a.id, "+48601234567")
    sos_id = await authorized(svc, a.id, "112")
    ari = unreachable_ari()
    cut = asyncio.Event()
    controller = SessionController(
        ari,
        svc.ledger,
        ControlSettings(watch_interval_s=0.05),
        on_event=lambda kind: cut.set() if kind == "hangup_suspended" else None,
    )
    normal = Session(normal_id, a.id, "chan-n", "+48601234567", 300, b_chan="chan-nb")
    sos = Session(sos_id, a.id, "chan-e", "112", 0, b_chan="chan-eb", emergency=True)
    for s in (normal, sos):
        s.answered_at = time.time()
        controller._register(s)
    await svc.accounts.set_status(a.id, AccountStatus.SUSPENDED, "test")
    watch = asyncio.create_task(controller._watch_accounts())
    try:
        await asyncio.wait_for(cut.wait(), 5)
        await asyncio.sleep(0.3)  # that call's end, and a few more rounds of the watch
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    try:
        assert normal.ended
        assert not sos.ended and sos_id in controller.sessions
        await controller.hangup_account(a.id)  # the abuse runner's hook
        assert not sos.ended and sos_id in controller.sessions
        assert (await svc.ledger.call(a.id, sos_id))["state"] == "open"
    finally:
        await ari.close()


async def test_an_adopted_emergency_call_gets_no_deadline_and_is_not_cut(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    sos_id = await authorized(svc, a.id, "112")
    record = await svc.ledger.call(a.id, sos_id)
    assert record["emergency"] == "1"
    record.update(a_chan="chan-e", b_chan="chan-eb", answered_at=str(int(time.time() * 1000)))
    ari = unreachable_ari()
    controller = SessionController(ari, svc.ledger, ControlSettings())
    try:
        # a deadline would be a request to ARI (failing here) and, with granted 0, a cut
        await controller._adopt(record, {"chan-e": {"state": "Up"}})
        s = controller.sessions[sos_id]
        assert s.emergency and s.task is None and not s.ended
        await svc.accounts.set_status(a.id, AccountStatus.CLOSED, "test")
        await controller.hangup_account(a.id)
        assert not s.ended
    finally:
        await ari.close()
