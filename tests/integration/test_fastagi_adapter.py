"""The FastAGI adapter on the real FastAGI server and ledger, driven by a fake Asterisk
(tests/unit/test_agi_server.py): bad requests from the switch are refused with their own
reason and SIP code, never reported as an outage, never with a traceback."""

from __future__ import annotations

import logging

import pytest

from runtime.services import Services
from switch.fastagi import FastAgiAdapter, parse_grant
from tests.unit.test_agi_server import StartServer, res_agi_args, start_server

__all__ = ["start_server"]  # the fixture, imported for pytest

LONG_ID = "1700000000." + "7" * 4000


def variables(commands: list[str]) -> dict[str, str]:
    out = {}
    for line in commands:
        words = res_agi_args(line)
        assert words[:2] == ["SET", "VARIABLE"], line
        out[words[2]] = words[3]
    if "TOLLGATE_GRANT" in out:  # the dialplan splits it with ARRAY()
        out.update(parse_grant(out.pop("TOLLGATE_GRANT")))
    return out


@pytest.mark.parametrize("call_id", [LONG_ID, "a/b", "../x", "", "1700000000.1 x"])
async def test_an_invalid_call_id_is_an_invalid_request_not_an_outage(
    svc: Services, start_server: StartServer, caplog: pytest.LogCaptureFixture, call_id: str
) -> None:
    adapter = FastAgiAdapter(svc.ledger)
    running = await start_server(adapter.handlers())
    with caplog.at_level(logging.WARNING):
        client = await running.client()
        await client.send_header("authorize", extra={"uniqueid": call_id})
        told = variables(await client.answer_all())
        await running.events.wait_for("request", "authorize")
    assert told == {
        "TOLLGATE_CALL_ID": "",
        "TOLLGATE_REASON": "INVALID_REQUEST",
        "TOLLGATE_SIP_CODE": "500",
        "TOLLGATE_DECISION": "DENY",
        "TOLLGATE_MAX_MS": "0",
        "TOLLGATE_DIAL": "",
        "TOLLGATE_CONTROL": "",
        "TOLLGATE_CLI": "",
    }
    assert "error" not in running.events.kinds()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert await svc.ledger.open_sessions() == []


async def test_a_grant_is_one_agi_command_the_dialplan_splits(
    svc: Services, start_server: StartServer
) -> None:
    """Each SET VARIABLE is a round trip the switch's channel thread waits for: the whole
    grant travels in one, TOLLGATE_GRANT, split by the dialplan's ARRAY() on commas."""
    adapter = FastAgiAdapter(svc.ledger)
    running = await start_server(adapter.handlers())
    client = await running.client()
    await client.send_header("authorize", extra={"accountcode": "nobody-here"})
    [command] = await client.answer_all()
    words = res_agi_args(command)
    assert words[:3] == ["SET", "VARIABLE", "TOLLGATE_GRANT"]
    assert parse_grant(words[3]) == {
        "TOLLGATE_DECISION": "DENY",
        "TOLLGATE_REASON": "UNKNOWN_ACCOUNT",
        "TOLLGATE_SIP_CODE": "403",
        "TOLLGATE_MAX_MS": "0",
        "TOLLGATE_DIAL": "",
        "TOLLGATE_CALL_ID": "1700000000.1",
        "TOLLGATE_CONTROL": "",
        "TOLLGATE_CLI": "",
    }
    assert words[3].count(",") == 7


async def test_finish_with_an_invalid_call_id_is_ignored_without_a_traceback(
    svc: Services, start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = FastAgiAdapter(svc.ledger)
    running = await start_server(adapter.handlers())
    with caplog.at_level(logging.WARNING):
        client = await running.client()
        await client.send_header("finish", args=[LONG_ID, "ANSWER", "5000", "16", "", "0"])
        told = variables(await client.answer_all())
        await running.events.wait_for("request", "finish")
    assert told == {"TOLLGATE_FINISHED": "1"}
    assert "error" not in running.events.kinds()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
