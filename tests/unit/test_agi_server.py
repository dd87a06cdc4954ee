"""FastAGI server against a fake Asterisk speaking over a real loopback socket.

Timing assertions are deliberately loose ("closed within budget + 2 s"): machines are noisy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from switch.agi import (
    AgiChannel,
    AgiConfigError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResponse,
    AgiSettings,
    FastAgiServer,
    Handler,
    quote_value,
)

SLACK_S = 2.0  # generous margin on every time bound


# --- the fake Asterisk ------------------------------------------------------------------------


def header_lines(
    script: str | None = "authorize",
    *,
    args: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> list[str]:
    """The header block res_agi sends, minus the terminating empty line; `extra` overrides."""
    fields = {
        "network": "yes",
        "network_script": script,
        "request": f"agi://127.0.0.1:4573/{script or ''}",
        "channel": "PJSIP/alice-00000001",
        "uniqueid": "1700000000.1",
        "callerid": "1001",
        "calleridname": "Alice",
        "context": "from-customers",
        "extension": "4930123456",
        "accountcode": "acct-7",
        **(extra or {}),
    }
    lines = [f"agi_{key}: {value}" for key, value in fields.items() if value is not None]
    lines += [f"agi_arg_{n}: {value}" for n, value in enumerate(args, start=1)]
    return lines


class FakeAsterisk:
    """Plays Asterisk's side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, source: str | None = None) -> FakeAsterisk:
        """`source`: the local address to connect from (any 127.x works on loopback)."""
        local = (source, 0) if source is not None else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_header(
        self,
        script: str | None = "authorize",
        *,
        args: Sequence[str] = (),
        extra: Mapping[str, str] | None = None,
        eol: str = "\n",
    ) -> None:
        lines = header_lines(script, args=args, extra=extra)
        await self.send_raw((eol.join(lines) + eol + eol).encode())

    async def read_command(self, within: float = 5.0) -> str | None:
        """The next command line, or None at EOF."""
        async with asyncio.timeout(within):
            raw = await self.reader.readline()
        if not raw:
            return None
        assert raw.endswith(b"\n"), raw
        return raw[:-1].decode()

    async def reply(self, *lines: str) -> None:
        await self.send_raw("".join(line + "\n" for line in lines).encode())

    async def answer_all(self, reply: str = "200 result=1", within: float = 5.0) -> list[str]:
        """Answer every command with `reply` until the server closes; return the commands."""
        seen: list[str] = []
        while (command := await self.read_command(within)) is not None:
            seen.append(command)
            await self.reply(reply)
        return seen

    async def closed_within(self, seconds: float) -> bool:
        """True if the server closes the connection within `seconds` (sending nothing)."""
        try:
            async with asyncio.timeout(seconds):
                data = await self.reader.read(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert data == b"", f"server sent {data!r} instead of closing"
        return True

    def half_close(self) -> None:
        self.writer.write_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):  # the server may already have reset it
            await self.writer.wait_closed()


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Events:
    seen: list[tuple[str, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, kind: str, script: str) -> None:
        self.seen.append((kind, script))
        self.changed.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]

    async def wait_for(self, kind: str, script: str | None = None, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not any(k == kind and (script is None or s == script) for k, s in self.seen):
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Running:
    server: FastAgiServer
    events: Events
    clients: list[FakeAsterisk] = field(default_factory=list)

    async def client(self, source: str | None = None) -> FakeAsterisk:
        client = await FakeAsterisk.connect(self.server.port, source)
        self.clients.append(client)
        return client


StartServer = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    started: list[Running] = []

    async def start(handlers: Mapping[str, Handler], **overrides: Any) -> Running:
        events = Events()
        server = FastAgiServer(handlers, AgiSettings(port=0, **overrides), on_event=events)
        await server.start()
        started.append(Running(server, events))
        return started[-1]

    yield start
    for running in started:
        for client in running.clients:
            await client.close()
        await running.server.close()


def res_agi_args(line: str) -> list[str]:
    """Split a command line the way res_agi's parse_args does (quotes, backslash escapes)."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = in_arg = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = in_arg = True
        elif char == '"':
            quoted = not quoted
            in_arg = True
        elif char in " \t" and not quoted:
            if in_arg:
                args.append("".join(current))
                current, in_arg = [], False
        else:
            current.append(char)
            in_arg = True
    if in_arg:
        args.append("".join(current))
    return args


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults_bind_loopback() -> None:
    settings = AgiSettings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 4573
    assert settings.budget_s == 0.5


def test_settings_from_env_reads_milliseconds_and_ignores_empty() -> None:
    settings = AgiSettings.from_env(
        {
            "TOLLGATE_AGI_HOST": "0.0.0.0",
            "TOLLGATE_AGI_PORT": "4600",
            "TOLLGATE_AGI_BUDGET_MS": "250",
            "TOLLGATE_AGI_HEADER_TIMEOUT_MS": "1500",
            "TOLLGATE_AGI_MAX_HEADER_LINES": "64",
            "TOLLGATE_AGI_MAX_LINE_BYTES": "",
            "TOLLGATE_AGI_MAX_CONNECTIONS": "10",
        }
    )
    assert settings == AgiSettings(
        host="0.0.0.0",
        port=4600,
        budget_s=0.25,
        header_timeout_s=1.5,
        max_header_lines=64,
        max_connections=10,
    )
    assert AgiSettings.from_env({}) == AgiSettings()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"TOLLGATE_AGI_PORT": "http"}, "TOLLGATE_AGI_PORT"),
        ({"TOLLGATE_AGI_BUDGET_MS": "0.5"}, "TOLLGATE_AGI_BUDGET_MS"),
        ({"TOLLGATE_AGI_BUDGET_MS": "0"}, "budget_s"),
        ({"TOLLGATE_AGI_PORT": "70000"}, "port"),
        ({"TOLLGATE_AGI_MAX_CONNECTIONS": "0"}, "max_connections"),
    ],
)
def test_settings_reject_bad_values(env: dict[str, str], name: str) -> None:
    with pytest.raises(AgiConfigError) as caught:
        AgiSettings.from_env(env)
    assert caught.value.name == name


def test_settings_read_the_peer_allow_list_and_per_peer_cap() -> None:
    settings = AgiSettings.from_env(
        {
            "TOLLGATE_AGI_ALLOWED_PEERS": " 127.0.0.1, 10.1.0.0/16 ,",
            "TOLLGATE_AGI_MAX_PER_PEER": "8",
        }
    )
    assert settings.allowed_peers == ("127.0.0.1", "10.1.0.0/16")
    assert settings.max_per_peer == 8
    with pytest.raises(AgiConfigError) as caught:
        AgiSettings.from_env({"TOLLGATE_AGI_ALLOWED_PEERS": "127.0.0.1,asterisk.local"})
    assert (caught.value.name, caught.value.value) == ("allowed_peers", "asterisk.local")
    with pytest.raises(AgiConfigError) as caught:
        AgiSettings.from_env({"TOLLGATE_AGI_MAX_PER_PEER": "0"})
    assert caught.value.name == "max_per_peer"


def test_quote_value_escapes_and_strips_controls() -> None:
    assert quote_value('a"b\\c') == 'a\\"b\\\\c'
    assert quote_value("x\r\ny\x00z\x1b\x7f") == "xyz"
    assert quote_value("Zoë 😀") == "Zoë 😀"


# --- the happy path ---------------------------------------------------------------------------


async def test_handler_sets_three_variables_in_order(start_server: StartServer) -> None:
    seen: list[AgiRequest] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        seen.append(request)
        await channel.set_variable("TG_DECISION", "ALLOW")
        await channel.set_variable("TG_LIMIT_MS", "3000")
        await channel.set_variable("CDR(userfield)", "rated")

    running = await start_server({"authorize": authorize})
    client = await running.client()
    before = time.monotonic()
    await client.send_header(args=["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])

    commands = await client.answer_all()
    assert commands == [
        'SET VARIABLE TG_DECISION "ALLOW"',
        'SET VARIABLE TG_LIMIT_MS "3000"',
        'SET VARIABLE CDR(userfield) "rated"',
    ]
    await running.events.wait_for("request", "authorize")
    assert running.events.seen == [("request", "authorize")]

    (request,) = seen
    assert request.script == "authorize"
    assert request.env["accountcode"] == "acct-7"
    assert request.env["extension"] == "4930123456"
    assert request.env["uniqueid"] == "1700000000.1"
    assert request.env["callerid"] == "1001"
    assert request.env["channel"] == "PJSIP/alice-00000001"
    # agi_arg_10 sorts numerically, not as text
    assert request.args == ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
    assert before <= request.received_at <= time.monotonic()


async def test_header_with_crlf_and_odd_values(start_server: StartServer) -> None:
    seen: list[AgiRequest] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        seen.append(request)

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header(
        extra={"calleridname": "  Bob: the builder", "rdnis": ""}, args=["x:y"], eol="\r\n"
    )
    assert await client.closed_within(5)
    (request,) = seen
    assert request.env["calleridname"] == "  Bob: the builder"  # only the separator space goes
    assert request.env["rdnis"] == ""
    assert request.args == ("x:y",)


async def test_non_utf8_value_is_replaced_not_fatal(start_server: StartServer) -> None:
    seen: list[AgiRequest] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        seen.append(request)

    running = await start_server({"authorize": authorize})
    client = await running.client()
    lines = "\n".join(header_lines(extra={"calleridname": "Jos@"})).encode()
    await client.send_raw(lines.replace(b"Jos@", b"Jos\xe9") + b"\n\n")
    assert await client.closed_within(5)
    (request,) = seen
    assert request.env["calleridname"] == "Jos\ufffd"


async def test_get_variable_autohangup_and_hangup(start_server: StartServer) -> None:
    results: list[object] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        results.append(await channel.get_variable("TG_SET"))
        results.append(await channel.get_variable("TG_UNSET"))
        await channel.set_autohangup(30)
        results.append(channel.hung_up)
        await channel.hangup()
        results.append(channel.hung_up)

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == "GET VARIABLE TG_SET"
    await client.reply("200 result=1 (value (with) parens)")
    assert await client.read_command() == "GET VARIABLE TG_UNSET"
    await client.reply("200 result=0")
    assert await client.read_command() == "SET AUTOHANGUP 30"
    await client.reply("200 result=0")
    assert await client.read_command() == "HANGUP"
    await client.reply("200 result=1")
    assert await client.read_command() is None
    assert results == ["value (with) parens", None, False, True]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("200 result=1", AgiResponse(200, "1", None)),
        ("200 result=0", AgiResponse(200, "0", None)),
        ("200 result=-1", AgiResponse(200, "-1", None)),
        ("200 result=1 (timeout) endpos=1234", AgiResponse(200, "1", "timeout")),
        ("200 result=1 ()", AgiResponse(200, "1", "")),
        ("200 result=1 (a) b)", AgiResponse(200, "1", "a) b")),
        ("200 result=49 (dtmf) endpos=0\r", AgiResponse(200, "49", "dtmf")),
    ],
)
async def test_command_parses_200_replies(
    start_server: StartServer, reply: str, expected: AgiResponse
) -> None:
    got: list[AgiResponse] = []

    async def probe(request: AgiRequest, channel: AgiChannel) -> None:
        got.append(await channel.command("STREAM FILE beep 0"))

    running = await start_server({"probe": probe})
    client = await running.client()
    await client.send_header("probe")
    assert await client.read_command() == "STREAM FILE beep 0"
    await client.reply(reply)
    assert await client.closed_within(5)
    assert got == [expected]


# --- refusals and malformed requests ----------------------------------------------------------


async def test_unknown_script_is_closed_without_commands(start_server: StartServer) -> None:
    called: list[str] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        called.append(request.script)

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header("nope")
    assert await client.closed_within(5)
    await running.events.wait_for("unknown_script", "nope")
    assert called == []

    other = await running.client()
    await other.send_header(None)  # agi://host:port with no path: no agi_network_script
    assert await other.closed_within(5)
    await running.events.wait_for("unknown_script", "")


MALFORMED_HEADERS: dict[str, bytes] = {
    "line too long": b"agi_network: yes\nagi_callerid: " + b"9" * 5000 + b"\n\n",
    "too many lines": b"".join(b"agi_x%d: 1\n" % n for n in range(200)) + b"\n",
    "missing colon": b"agi_network: yes\nagi_callerid 1001\n\n",
    "non-agi key": b"agi_network: yes\nHost: example.org\n\n",
    "non-utf8 key": b"agi_network: yes\nagi_\xff\xfe: x\n\n",
    "duplicate key": (
        b"agi_network_script: authorize\nagi_accountcode: victim\nagi_accountcode: acct-7\n\n"
    ),
    "bad arg key": b"agi_network_script: authorize\nagi_arg_x: 1\n\n",
    "eof before end": b"agi_network: yes\nagi_network_script: authorize\n",
}


@pytest.mark.parametrize("payload", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
async def test_malformed_header_is_closed(start_server: StartServer, payload: bytes) -> None:
    called: list[str] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        called.append(request.script)

    running = await start_server({"authorize": authorize}, header_timeout_s=30.0)
    client = await running.client()
    with contextlib.suppress(ConnectionError):  # the server may close before reading it all
        await client.send_raw(payload)
    if payload.endswith(b"authorize\n"):
        client.half_close()  # EOF mid-header must end it now, not at the header timeout
    assert await client.closed_within(SLACK_S)
    await running.events.wait_for("malformed", "")
    assert called == []


async def test_slowloris_header_is_cut_at_header_timeout(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        raise AssertionError("must not be reached")

    running = await start_server({"authorize": authorize}, header_timeout_s=0.3)
    client = await running.client()
    started = time.monotonic()
    await client.send_raw(b"agi_network: yes\n")

    async def drip() -> None:
        # one byte at a time: a per-line timeout would never fire
        for byte in b"agi_network_script: authorize\n" * 100:
            await client.send_raw(bytes([byte]))
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        assert await client.closed_within(0.3 + SLACK_S)
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
    assert time.monotonic() - started < 0.3 + SLACK_S
    await running.events.wait_for("malformed", "")


async def test_silent_client_is_cut_at_header_timeout(start_server: StartServer) -> None:
    running = await start_server({}, header_timeout_s=0.3)
    client = await running.client()
    assert await client.closed_within(0.3 + SLACK_S)
    await running.events.wait_for("malformed", "")


# --- the budget -------------------------------------------------------------------------------


async def test_budget_exceeded_while_a_concurrent_request_succeeds(
    start_server: StartServer,
) -> None:
    slow_started = asyncio.Event()
    slow_cancelled = asyncio.Event()

    async def slow(request: AgiRequest, channel: AgiChannel) -> None:
        slow_started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            slow_cancelled.set()
            raise

    async def fast(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    running = await start_server({"slow": slow, "fast": fast}, budget_s=0.5)
    slow_client = await running.client()
    started = time.monotonic()
    await slow_client.send_header("slow")
    await asyncio.wait_for(slow_started.wait(), 5)

    fast_client = await running.client()
    await fast_client.send_header("fast")
    assert await fast_client.read_command() == 'SET VARIABLE TG_DECISION "ALLOW"'
    await fast_client.reply("200 result=1")
    assert await fast_client.closed_within(5)

    assert await slow_client.closed_within(0.5 + SLACK_S)
    assert time.monotonic() - started < 0.5 + SLACK_S
    assert slow_cancelled.is_set()
    await running.events.wait_for("budget_exceeded", "slow")
    assert ("error", "fast") not in running.events.seen
    assert ("hangup", "fast") not in running.events.seen


async def test_budget_bounds_a_stalled_reply(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    running = await start_server({"authorize": authorize}, budget_s=0.3)
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == 'SET VARIABLE TG_DECISION "ALLOW"'
    # Asterisk never answers: the budget, not the peer, ends the request
    assert await client.closed_within(0.3 + SLACK_S)
    await running.events.wait_for("budget_exceeded", "authorize")


async def test_handlers_own_timeout_is_an_error_not_the_budget(
    start_server: StartServer,
) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        raise TimeoutError("database did not answer")

    running = await start_server({"authorize": authorize}, budget_s=5.0)
    client = await running.client()
    await client.send_header()
    assert await client.closed_within(5)
    await running.events.wait_for("error", "authorize")
    assert "budget_exceeded" not in running.events.kinds()


# --- hangups and half-closed sockets ----------------------------------------------------------


async def test_hangup_mid_command_then_set_variable_raises(start_server: StartServer) -> None:
    observed: list[object] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        observed.append(await channel.command("ANSWER"))
        observed.append(channel.hung_up)
        try:
            await channel.set_variable("TG_DECISION", "ALLOW")
        except AgiHangup as exc:
            observed.append(exc.command)
            raise

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == "ANSWER"
    await client.reply("HANGUP", "200 result=0")
    # nothing more is sent: the set_variable is refused locally
    assert await client.read_command() is None
    await running.events.wait_for("hangup", "authorize")
    assert observed == [
        AgiResponse(200, "0", None),
        True,
        'SET VARIABLE TG_DECISION "ALLOW"',
    ]


async def test_dead_channel_511_raises_hangup(start_server: StartServer) -> None:
    raised: list[AgiHangup] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        try:
            await channel.set_autohangup(10)
        except AgiHangup as exc:
            raised.append(exc)

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == "SET AUTOHANGUP 10"
    await client.reply("HANGUP", "511 Command Not Permitted on a dead channel or intercept routine")
    assert await client.closed_within(5)
    assert [exc.command for exc in raised] == ["SET AUTOHANGUP 10"]


async def test_eof_while_waiting_for_reply_raises_hangup(start_server: StartServer) -> None:
    raised: list[AgiHangup] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        try:
            await channel.set_variable("TG_DECISION", "ALLOW")
        except AgiHangup as exc:
            raised.append(exc)
            raise
        finally:
            assert channel.hung_up

    running = await start_server({"authorize": authorize}, budget_s=30.0)
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == 'SET VARIABLE TG_DECISION "ALLOW"'
    await client.close()
    await running.events.wait_for("hangup", "authorize", within=SLACK_S)
    assert len(raised) == 1


async def test_half_closed_socket_ends_the_connection(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")
        await channel.set_variable("TG_LIMIT_MS", "1000")

    # a budget far beyond the bound below: only EOF handling can close it in time
    running = await start_server({"authorize": authorize}, budget_s=30.0)
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == 'SET VARIABLE TG_DECISION "ALLOW"'
    client.half_close()
    assert await client.closed_within(SLACK_S)
    await running.events.wait_for("hangup", "authorize")


async def test_half_close_right_after_header(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.get_variable("TG_ANYTHING")

    running = await start_server({"authorize": authorize}, budget_s=30.0)
    client = await running.client()
    await client.send_header()
    client.half_close()
    assert await client.read_command() == "GET VARIABLE TG_ANYTHING"
    assert await client.closed_within(SLACK_S)
    await running.events.wait_for("hangup", "authorize")


# --- error replies ----------------------------------------------------------------------------


async def test_error_replies_raise_protocol_error_and_stay_in_step(
    start_server: StartServer,
) -> None:
    raised: list[AgiProtocolError] = []
    after: list[AgiResponse] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        for line in ("FROB", "SET VARIABLE", "GET FULL VARIABLE"):
            try:
                await channel.command(line)
            except AgiProtocolError as exc:
                raised.append(exc)
        after.append(await channel.command("NOOP"))

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == "FROB"
    await client.reply("510 Invalid or unknown command")
    assert await client.read_command() == "SET VARIABLE"
    await client.reply(
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: SET VARIABLE <variablename> <value>",
        "520 End of proper usage.",
    )
    assert await client.read_command() == "GET FULL VARIABLE"
    await client.reply("511 Command Not Permitted on a dead channel or intercept routine")
    assert await client.read_command() == "NOOP"
    await client.reply("200 result=0")
    assert await client.closed_within(5)

    assert [exc.code for exc in raised] == [510, 520, 511]
    assert raised[0].line == "FROB"
    assert raised[1].usage == ("Usage: SET VARIABLE <variablename> <value>",)
    assert after == [AgiResponse(200, "0", None)]


async def test_garbage_reply_is_a_protocol_error(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.command("NOOP")

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == "NOOP"
    await client.reply("hello there")
    assert await client.closed_within(5)
    await running.events.wait_for("error", "authorize")


# --- sanitising -------------------------------------------------------------------------------


async def test_injection_through_set_variable_is_impossible(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        # caller-controlled text (caller ID name) echoed back into the dialplan
        await channel.set_variable("TG_CALLER", request.env["calleridname"] + '"\r\nHANGUP\r\n')
        await channel.set_variable("TG_PATH", 'C:\\"x\\')

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    first = await client.read_command()
    await client.reply("200 result=1")
    second = await client.read_command()
    await client.reply("200 result=1")
    assert await client.read_command() is None  # exactly two commands, no smuggled HANGUP

    assert first == 'SET VARIABLE TG_CALLER "Alice\\"HANGUP"'
    assert res_agi_args(first) == ["SET", "VARIABLE", "TG_CALLER", 'Alice"HANGUP']
    assert second is not None
    assert res_agi_args(second) == ["SET", "VARIABLE", "TG_PATH", 'C:\\"x\\']


async def test_header_value_with_quotes_round_trips_safely(start_server: StartServer) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_CALLER", request.env["calleridname"])

    running = await start_server({"authorize": authorize})
    client = await running.client()
    hostile = 'Eve" TG_OTHER "1\\'
    await client.send_header(extra={"calleridname": hostile})
    command = await client.read_command()
    await client.reply("200 result=1")
    assert command is not None
    assert res_agi_args(command) == ["SET", "VARIABLE", "TG_CALLER", hostile]


async def test_variable_names_and_raw_commands_are_validated(start_server: StartServer) -> None:
    refused: list[str] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        for name in ("", "1ABC", "A B", "A\nB", 'A"', "A-B", "A;B"):
            try:
                await channel.set_variable(name, "x")
            except ValueError:
                refused.append(name)
        for line in ("NOOP\nHANGUP", "NOOP\r", "NOOP\x00", "NOOP " + "x" * 3000):
            try:
                await channel.command(line)
            except ValueError:
                refused.append(line[:12])
        for bad in (-1, True):
            try:
                await channel.set_autohangup(bad)
            except ValueError:
                refused.append(str(bad))
        await channel.set_variable("TIMEOUT(absolute)", "4")

    running = await start_server({"authorize": authorize})
    client = await running.client()
    await client.send_header()
    assert await client.answer_all() == ['SET VARIABLE TIMEOUT(absolute) "4"']
    assert len(refused) == 7 + 4 + 2


# --- load, failures, shutdown -----------------------------------------------------------------


async def test_overload_rejects_extra_connections(start_server: StartServer) -> None:
    release = asyncio.Event()
    inside = 0
    both_inside = asyncio.Event()

    async def hold(request: AgiRequest, channel: AgiChannel) -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await release.wait()

    running = await start_server({"hold": hold}, max_connections=2, budget_s=30.0)
    held = [await running.client(), await running.client()]
    for client in held:
        await client.send_header("hold")
    await asyncio.wait_for(both_inside.wait(), 5)

    extra = await running.client()
    assert await extra.closed_within(SLACK_S)
    await running.events.wait_for("rejected_overload", "")

    release.set()
    for client in held:
        assert await client.closed_within(5)

    # capacity is given back once they finish
    again = await running.client()
    await again.send_header("hold")
    assert await again.closed_within(5)
    assert running.events.kinds().count("request") == 3


async def _authorized(running: Running, source: str) -> list[str]:
    client = await running.client(source)
    await client.send_header("authorize")
    return await client.answer_all()


async def test_idle_connections_from_one_address_leave_the_switch_its_slots(
    start_server: StartServer,
) -> None:
    """Issue 12 item 10: idle connections from another local process took every slot and
    the switch's authorizations got no answer. One address may now hold max_per_peer."""

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    running = await start_server(
        {"authorize": authorize}, max_connections=40, max_per_peer=10, header_timeout_s=30.0
    )
    idle = [await running.client("127.0.0.2") for _ in range(60)]
    await running.events.wait_for("rejected_peer_limit", "")
    answers = await asyncio.gather(*(_authorized(running, "127.0.0.1") for _ in range(5)))
    assert answers == [['SET VARIABLE TG_DECISION "ALLOW"']] * 5
    closed = [await c.closed_within(SLACK_S) for c in idle]
    assert closed.count(False) == 10  # the ones it may hold stay open until their timeout
    assert running.events.kinds().count("rejected_peer_limit") == 50


async def test_allow_list_refuses_other_peers_and_does_not_cap_the_switch(
    start_server: StartServer,
) -> None:
    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    running = await start_server(
        {"authorize": authorize},
        allowed_peers=("127.0.0.1", "127.0.1.0/24"),
        max_per_peer=2,
        header_timeout_s=30.0,
    )
    stranger = await running.client("127.0.0.2")
    assert await stranger.closed_within(SLACK_S)
    await running.events.wait_for("rejected_peer", "")
    # the switch's own address is not held to the per-peer cap
    switch_idle = [await running.client("127.0.0.1") for _ in range(4)]
    answers = await asyncio.gather(
        *(_authorized(running, ip) for ip in ("127.0.0.1", "127.0.1.7", "127.0.0.1"))
    )
    assert answers == [['SET VARIABLE TG_DECISION "ALLOW"']] * 3
    assert not any([await c.closed_within(0.2) for c in switch_idle])
    assert running.events.kinds().count("rejected_peer") == 1
    assert "rejected_peer_limit" not in running.events.kinds()


async def test_handler_exception_is_logged_and_server_survives(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: AgiRequest, channel: AgiChannel) -> None:
        raise RuntimeError("boom")

    async def fine(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    running = await start_server({"broken": broken, "fine": fine})
    with caplog.at_level(logging.ERROR, logger="tollgate.switch.agi"):
        client = await running.client()
        await client.send_header("broken")
        assert await client.closed_within(5)
        await running.events.wait_for("error", "broken")

    records = [r for r in caplog.records if r.name == "tollgate.switch.agi"]
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in records), records

    client = await running.client()
    await client.send_header("fine")
    assert await client.answer_all() == ['SET VARIABLE TG_DECISION "ALLOW"']


async def test_broken_event_hook_does_not_break_requests() -> None:
    def hook(kind: str, script: str) -> None:
        raise ValueError("metrics backend down")

    async def fine(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TG_DECISION", "ALLOW")

    server = FastAgiServer({"fine": fine}, AgiSettings(port=0), on_event=hook)
    await server.start()
    try:
        client = await FakeAsterisk.connect(server.port)
        await client.send_header("fine")
        assert await client.answer_all() == ['SET VARIABLE TG_DECISION "ALLOW"']
        await client.close()
    finally:
        await server.close()


async def test_close_with_connections_in_flight() -> None:
    baseline = asyncio.all_tasks()
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def hold(request: AgiRequest, channel: AgiChannel) -> None:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    settings = AgiSettings(port=0, budget_s=60.0, header_timeout_s=60.0)
    server = FastAgiServer({"hold": hold}, settings)
    await server.start()
    in_handler = await FakeAsterisk.connect(server.port)
    await in_handler.send_header("hold")
    in_header = await FakeAsterisk.connect(server.port)
    await in_header.send_raw(b"agi_network: yes\n")
    silent = await FakeAsterisk.connect(server.port)
    await asyncio.wait_for(entered.wait(), 5)

    started = time.monotonic()
    await asyncio.wait_for(server.close(), 5)
    assert time.monotonic() - started < 5
    assert cancelled.is_set()
    for client in (in_handler, in_header, silent):
        assert await client.closed_within(SLACK_S)
        await client.close()
    assert asyncio.all_tasks() - baseline == set()

    with pytest.raises(OSError):
        await FakeAsterisk.connect(server.port)


async def test_last_command_ends_the_session_before_its_reply(start_server: StartServer) -> None:
    """`last=True`: Asterisk sees the end of the session together with the command (its
    dialplan goes on as soon as it ran it), and the reply is still read and checked."""
    outcome: list[str] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TOLLGATE_GRANT", "ALLOW,OK", last=True)
        outcome.append("accepted")
        with pytest.raises(AgiProtocolError):
            await channel.command("GET VARIABLE X")
        outcome.append("no command after the last")
        done.set()

    done = asyncio.Event()
    running = await start_server({"authorize": authorize}, budget_s=30.0)
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == 'SET VARIABLE TOLLGATE_GRANT "ALLOW,OK"'
    assert await client.read_command() is None  # EOF before any reply was sent
    await client.reply("200 result=1")
    async with asyncio.timeout(5):
        await done.wait()
    assert outcome == ["accepted", "no command after the last"]


async def test_last_command_still_sees_a_dead_channel(start_server: StartServer) -> None:
    raised: list[AgiHangup] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        try:
            await channel.set_variable("TOLLGATE_GRANT", "ALLOW,OK", last=True)
        except AgiHangup as exc:
            raised.append(exc)
            raise

    running = await start_server({"authorize": authorize}, budget_s=30.0)
    client = await running.client()
    await client.send_header()
    assert await client.read_command() == 'SET VARIABLE TOLLGATE_GRANT "ALLOW,OK"'
    assert await client.read_command() is None
    await client.reply("HANGUP", "511 Command Not Permitted on a dead channel or intercept routine")
    await running.events.wait_for("hangup", "authorize", within=SLACK_S)
    assert len(raised) == 1


async def test_answer_time_counts_from_accept_to_the_last_command() -> None:
    """`on_answered` gets, per session that sent its last command, the time since the
    connection was accepted: a header that comes late is in it; a session without a last
    command (unknown script, a handler sending none) reports nothing."""
    answered: list[tuple[str, float]] = []

    async def authorize(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("TOLLGATE_GRANT", "ALLOW,OK", last=True)

    async def quiet(request: AgiRequest, channel: AgiChannel) -> None:
        await channel.set_variable("X", "1")

    server = FastAgiServer(
        {"authorize": authorize, "quiet": quiet},
        AgiSettings(port=0),
        on_answered=lambda script, s: answered.append((script, s)),
    )
    await server.start()
    try:
        for script in ("nosuch", "quiet"):
            client = await FakeAsterisk.connect(server.port)
            await client.send_header(script)
            await client.answer_all()
            await client.close()
        client = await FakeAsterisk.connect(server.port)
        await asyncio.sleep(0.2)  # the header comes 0.2 s after the connection
        await client.send_header()
        await client.answer_all()
        await client.close()
    finally:
        await server.close()
    assert [script for script, _ in answered] == ["authorize"]
    assert answered[0][1] >= 0.2
