"""FastAGI server: speaks Asterisk's AGI protocol over TCP and runs named handlers.

Domain-agnostic: it parses the request, enforces time and size limits, and gives each handler
an `AgiChannel` to send commands on. What the handlers decide is someone else's business.

Asterisk holds the call while a connected FastAGI server stalls, so every request is bounded:
`header_timeout_s` for the header block, then `budget_s` for the handler and its commands.
Closing the connection early is always safe: the dialplan continues and defaults to DENY.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger("tollgate.switch.agi")

_ENV_PREFIX = "TOLLGATE_AGI_"
# res_agi reads each command into a 2048-byte buffer; longer lines would be cut mid-argument.
_MAX_COMMAND_BYTES = 2047
# How long a closing connection may take to flush before it is aborted.
_CLOSE_GRACE_S = 1.0
# Bounds what a 520 usage text may make us keep (the budget bounds how long it may take).
_MAX_USAGE_LINES = 64

_HEADER_KEY = re.compile(rb"agi_[a-z0-9_]+")
_ARG_KEY = re.compile(r"arg_([1-9][0-9]*)")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_()]*")
_REPLY = re.compile(r"(?P<code>[0-9]{3})(?: (?P<rest>.*))?")
# "result=1 (data)", optionally followed by "endpos=N ..." (stream and speech commands).
# data may itself contain ")" (GET VARIABLE values), so it ends at the ")" before endpos or EOL.
_REPLY_200 = re.compile(r"result=(?P<result>\S*)(?: \((?P<data>.*?)\)(?= endpos=|$))?(?: .*)?")
# C0 and C1 controls plus Unicode line separators: none belongs in a dialplan variable.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_COMMAND_BREAKERS = re.compile("[\r\n\x00]")


class AgiConfigError(ValueError):
    """A setting is invalid; `name` is the field or environment variable, `value` what was given."""

    def __init__(self, name: str, value: object, why: str) -> None:
        super().__init__(f"{name}={value!r}: {why}")
        self.name = name
        self.value = value
        self.why = why


class AgiError(Exception):
    """Base of the errors a handler may see from `AgiChannel`."""


class AgiHangup(AgiError):
    """The channel hung up (HANGUP line, EOF or dead-channel reply) while a reply was expected.

    `command` is the command that was pending or refused, if any.
    """

    def __init__(self, command: str | None, why: str) -> None:
        super().__init__(f"{why} (command: {command!r})" if command else why)
        self.command = command
        self.why = why


class AgiProtocolError(AgiError):
    """The peer broke the protocol or refused a command.

    `field` is the header key at fault, `line` the offending line (truncated), `code` the
    AGI reply code (510, 511, 520) and `usage` the usage text of a multi-line 520 reply.
    """

    def __init__(
        self,
        why: str,
        *,
        field: str | None = None,
        line: str | None = None,
        code: int | None = None,
        usage: tuple[str, ...] = (),
    ) -> None:
        details = [why]
        if field is not None:
            details.append(f"field={field!r}")
        if line is not None:
            details.append(f"line={line!r}")
        super().__init__(", ".join(details))
        self.why = why
        self.field = field
        self.line = line
        self.code = code
        self.usage = usage


@dataclass(frozen=True)
class AgiSettings:
    host: str = "127.0.0.1"  # loopback by default: AGI has no authentication
    port: int = 4573
    budget_s: float = 0.5  # handler + commands, counted from the end of the header block
    header_timeout_s: float = 2.0  # the whole header block, not per line (slowloris)
    max_header_lines: int = 128
    max_line_bytes: int = 4096
    max_connections: int = 512  # over this, new connections are closed at once
    # FastAGI has no authentication: the peer's address is the only control. With an
    # allow-list, connections from other addresses are closed at once; the switch's own
    # addresses are then the only ones that can hold slots.
    allowed_peers: tuple[str, ...] = ()  # addresses or networks; empty = any peer
    # One address outside the allow-list (any address when the list is empty) may hold at
    # most this many connections, so a local process cannot take every slot from the switch.
    max_per_peer: int = 256
    # Several processes answer on one port (SO_REUSEPORT; the kernel spreads connections
    # over them). Only set when the operator asked for workers: a stray second server
    # must otherwise fail to bind, not quietly take a share of the calls.
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise AgiConfigError("port", self.port, "must be 0..65535")
        for name in ("budget_s", "header_timeout_s"):
            seconds = getattr(self, name)
            if not (math.isfinite(seconds) and seconds > 0):
                raise AgiConfigError(name, seconds, "must be a positive number of seconds")
        for name in ("max_header_lines", "max_line_bytes", "max_connections", "max_per_peer"):
            if getattr(self, name) < 1:
                raise AgiConfigError(name, getattr(self, name), "must be at least 1")
        self.peer_networks()  # raises on an entry that is not an address or network

    def peer_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        networks = []
        for entry in self.allowed_peers:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise AgiConfigError(
                    "allowed_peers", entry, "not an IP address or network"
                ) from None
        return tuple(networks)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgiSettings:
        """Read TOLLGATE_AGI_{HOST,PORT,BUDGET_MS,HEADER_TIMEOUT_MS,MAX_HEADER_LINES,
        MAX_LINE_BYTES,MAX_CONNECTIONS,MAX_PER_PEER,ALLOWED_PEERS}; unset or empty variables
        keep the defaults. ALLOWED_PEERS is a comma-separated list of addresses/networks."""
        source = os.environ if env is None else env
        default = cls()
        return cls(
            host=source.get(f"{_ENV_PREFIX}HOST") or default.host,
            port=_env_int(source, "PORT", default.port),
            budget_s=_env_ms(source, "BUDGET_MS", default.budget_s),
            header_timeout_s=_env_ms(source, "HEADER_TIMEOUT_MS", default.header_timeout_s),
            max_header_lines=_env_int(source, "MAX_HEADER_LINES", default.max_header_lines),
            max_line_bytes=_env_int(source, "MAX_LINE_BYTES", default.max_line_bytes),
            max_connections=_env_int(source, "MAX_CONNECTIONS", default.max_connections),
            max_per_peer=_env_int(source, "MAX_PER_PEER", default.max_per_peer),
            allowed_peers=tuple(
                p.strip()
                for p in source.get(f"{_ENV_PREFIX}ALLOWED_PEERS", "").split(",")
                if p.strip()
            ),
        )


def _env_int(source: Mapping[str, str], suffix: str, default: int) -> int:
    name = _ENV_PREFIX + suffix
    raw = source.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise AgiConfigError(name, raw, "not an integer") from None


def _env_ms(source: Mapping[str, str], suffix: str, default_s: float) -> float:
    name = _ENV_PREFIX + suffix
    raw = source.get(name, "").strip()
    if not raw:
        return default_s
    try:
        return int(raw) / 1000
    except ValueError:
        raise AgiConfigError(name, raw, "not an integer number of milliseconds") from None


@dataclass(frozen=True)
class AgiRequest:
    script: str  # agi://host:port/authorize -> "authorize" (agi_network_script)
    env: Mapping[str, str]  # every agi_* header, keyed without the "agi_" prefix
    args: tuple[str, ...]  # agi_arg_1..agi_arg_N, in numeric order
    received_at: float  # time.monotonic() when the header block was complete


@dataclass(frozen=True)
class AgiResponse:
    code: int
    result: str
    data: str | None  # "200 result=1 (value)" -> (200, "1", "value")


class AgiChannel:
    """The command side of one FastAGI connection: one command at a time, one reply each."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_line_bytes: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_line_bytes = max_line_bytes
        self._lock = asyncio.Lock()  # concurrent commands would read each other's replies
        self._hung_up = False
        self._eof = False
        self._done = False  # the last command was sent: the write side is shut
        # time.monotonic() when the last command was handed to the socket (None: not yet)
        self.answered_at: float | None = None

    @property
    def hung_up(self) -> bool:
        """True once Asterisk reported a hangup, the connection ended, or `hangup()` ran."""
        return self._hung_up

    async def command(self, line: str, *, last: bool = False) -> AgiResponse:
        """Send one raw command and return its 200 reply.

        `last`: no command follows. The write side is shut right after the line, so Asterisk
        reads the command and the end of the session together and its dialplan goes on as
        soon as it has run it, not once this process has woken up for the reply and closed
        (under CPU contention each wake-up is a wait in the run queue, on the caller's
        post-dial delay). The reply is still read and checked.

        Raises AgiProtocolError on 510/511/520 replies, AgiHangup on EOF or on a 511 once the
        channel is known to be hung up, ValueError for a line that could smuggle a second command.
        """
        if _COMMAND_BREAKERS.search(line):
            raise ValueError(f"AGI command contains CR, LF or NUL: {line!r}")
        encoded = line.encode("utf-8")
        if len(encoded) > _MAX_COMMAND_BYTES:
            raise ValueError(f"AGI command longer than {_MAX_COMMAND_BYTES} bytes")
        async with self._lock:
            if self._eof:
                raise AgiHangup(line, "connection already closed")
            if self._done:
                raise AgiProtocolError("a command after the last one", line=line)
            try:
                self._writer.write(encoded + b"\n")
                if last:
                    self.answered_at = time.monotonic()
                if last and self._writer.can_write_eof():
                    self._done = True
                    self._writer.write_eof()  # sent once the line is out
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._mark_gone()
                raise AgiHangup(line, "connection lost") from exc
            return await self._read_reply(line)

    async def set_variable(self, name: str, value: str, *, last: bool = False) -> None:
        """SET VARIABLE with `value` sanitised: it often carries caller-controlled text.
        `last`: the session's last command (see `command`)."""
        _check_variable_name(name)
        command = f'SET VARIABLE {name} "{quote_value(value)}"'
        if self._hung_up:
            raise AgiHangup(command, "channel already hung up")
        reply = await self.command(command, last=last)
        if reply.result != "1":
            raise AgiProtocolError("SET VARIABLE was not accepted", line=f"result={reply.result}")

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when it is not set."""
        _check_variable_name(name)
        reply = await self.command(f"GET VARIABLE {name}")
        if reply.result != "1":
            return None
        return reply.data if reply.data is not None else ""

    async def set_autohangup(self, seconds: int) -> None:
        """Hang the channel up `seconds` from now; 0 cancels a previous autohangup."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise ValueError(f"autohangup seconds must be a non-negative int, got {seconds!r}")
        await self.command(f"SET AUTOHANGUP {seconds}")

    async def hangup(self) -> None:
        await self.command("HANGUP")
        self._hung_up = True

    async def _read_reply(self, command: str) -> AgiResponse:
        while True:
            text = await self._next_line(command)
            if text == "HANGUP":
                # Asterisk reports the hangup out of band, then still answers the pending command.
                self._hung_up = True
                continue
            if text.startswith("520-"):
                usage = await self._read_usage(command)
                raise AgiProtocolError(
                    "invalid command syntax", line=command, code=520, usage=usage
                )
            return self._parse_reply(command, text)

    async def _read_usage(self, command: str) -> tuple[str, ...]:
        usage: list[str] = []
        while True:
            text = await self._next_line(command)
            if text.startswith("520 "):
                return tuple(usage)
            if text == "HANGUP":
                self._hung_up = True
            elif len(usage) < _MAX_USAGE_LINES:
                usage.append(text)

    def _parse_reply(self, command: str, text: str) -> AgiResponse:
        match = _REPLY.fullmatch(text)
        if match is None:
            raise AgiProtocolError("unparseable reply", line=_shorten(text))
        code = int(match["code"])
        rest = match["rest"] or ""
        if code == 200:
            fields = _REPLY_200.fullmatch(rest)
            if fields is None:
                raise AgiProtocolError("unparseable 200 reply", line=_shorten(text))
            return AgiResponse(code, fields["result"], fields["data"])
        if code == 511 and self._hung_up:
            raise AgiHangup(command, "refused on a dead channel")
        raise AgiProtocolError(f"command refused: {rest}", line=command, code=code)

    async def _next_line(self, command: str) -> str:
        try:
            raw = await _read_line(self._reader, self._max_line_bytes)
        except AgiProtocolError:
            self._eof = True  # the stream is out of step: nothing after this can be trusted
            raise
        if raw is None:
            self._mark_gone()
            raise AgiHangup(command, "connection closed while waiting for a reply")
        return raw.decode("utf-8", errors="replace").rstrip(" ")

    def _mark_gone(self) -> None:
        self._eof = True
        self._hung_up = True


def quote_value(value: str) -> str:
    """Make `value` safe inside an AGI double-quoted argument.

    Control characters are dropped (CR/LF would end the command line and start another),
    then backslash and double quote are escaped, as res_agi's argument parser expects.
    """
    cleaned = _CONTROL_CHARS.sub("", value)
    return cleaned.replace("\\", "\\\\").replace('"', '\\"')


def _check_variable_name(name: str) -> None:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValueError(f"invalid channel variable name: {name!r}")


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


async def _read_line(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """One line without its LF or CRLF; None at EOF (a partial last line counts as EOF)."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise AgiProtocolError(f"line longer than {max_bytes} bytes") from None
    except ConnectionError:
        return None
    line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    if len(line) > max_bytes:
        raise AgiProtocolError(f"line longer than {max_bytes} bytes")
    return line


async def _read_header(reader: asyncio.StreamReader, settings: AgiSettings) -> dict[str, str]:
    env: dict[str, str] = {}
    while True:
        line = await _read_line(reader, settings.max_line_bytes)
        if line is None:
            raise AgiProtocolError("connection closed before the end of the header")
        if not line:
            return env
        if len(env) >= settings.max_header_lines:
            raise AgiProtocolError(f"more than {settings.max_header_lines} header lines")
        raw_key, colon, raw_value = line.partition(b":")
        shown = _shorten(line.decode("utf-8", errors="replace"))
        if not colon:
            raise AgiProtocolError("header line without a colon", line=shown)
        key = raw_key.strip()
        if not _HEADER_KEY.fullmatch(key):
            raise AgiProtocolError("header key is not agi_[a-z0-9_]+", line=shown)
        name = key.decode("ascii")[len("agi_") :]
        # A repeated key means a value smuggled in a line break (caller ID is sent unescaped):
        # refuse the request rather than guess which copy is Asterisk's.
        if name in env:
            raise AgiProtocolError("duplicate header key", field=key.decode("ascii"))
        value = raw_value.decode("utf-8", errors="replace")
        env[name] = value[1:] if value.startswith(" ") else value


def _request_from_env(env: dict[str, str], received_at: float) -> AgiRequest:
    numbered: list[tuple[int, str]] = []
    for name, value in env.items():
        if name.startswith("arg_"):
            match = _ARG_KEY.fullmatch(name)
            if match is None:
                raise AgiProtocolError("argument key is not arg_N", field=f"agi_{name}")
            numbered.append((int(match[1]), value))
    return AgiRequest(
        script=env.get("network_script", ""),
        env=env,
        args=tuple(value for _, value in sorted(numbered)),
        received_at=received_at,
    )


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_GRACE_S):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()  # the peer is not reading: drop what is left
    except ConnectionError:
        pass  # already reset by the peer: it is closed either way


def _peer_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


Handler = Callable[[AgiRequest, AgiChannel], Awaitable[None]]
EventHook = Callable[[str, str], None]
AnswerHook = Callable[[str, float], None]


class FastAgiServer:
    """Accepts FastAGI connections and runs `handlers[script]` for each, within the budget.

    `on_event(kind, script)` is told the outcome of each connection: "request" (dispatched),
    "unknown_script", "malformed", "budget_exceeded", "hangup", "error", "rejected_overload",
    "rejected_peer" (not on the allow-list), "rejected_peer_limit" (its address holds
    `max_per_peer` connections already).
    `script` is "" when it is not known yet.
    `on_answered(script, seconds)`: from the connection's accept to its last command handed
    to the socket (the switch's wait on this process, less the network), per session that
    sent one.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        settings: AgiSettings,
        *,
        on_event: EventHook | None = None,
        on_answered: AnswerHook | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._settings = settings
        self._on_event = on_event
        self._on_answered = on_answered
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._per_peer: dict[str, int] = {}
        self._allowed = settings.peer_networks()
        self._closing = False
        self._port = settings.port

    @property
    def port(self) -> int:
        """The bound port (the kernel's choice when settings.port is 0) once started."""
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        self._closing = False
        self._server = await asyncio.start_server(
            self._serve,
            self._settings.host,
            self._settings.port,
            # +2 for CRLF, so over-long lines fail inside the reader, not in our memory
            limit=self._settings.max_line_bytes + 2,
            reuse_port=self._settings.reuse_port or None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("FastAGI listening on %s:%d", self._settings.host, self._port)

    async def close(self) -> None:
        """Stop accepting, cancel in-flight connections and wait until each one is closed."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        # Let connections accepted just before close() register, so none outlives us.
        await asyncio.sleep(0)
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        task = asyncio.current_task()
        assert task is not None  # start_server runs each connection in its own task
        # asyncio keeps no reference to connection tasks on 3.11: hold them to cancel them.
        self._tasks.add(task)
        try:
            if self._closing:
                return  # accepted just before close(): not an overload, just too late
            peer = _peer_address(writer)
            listed = self._listed(peer)
            if listed is False:
                logger.warning("FastAGI connection from %s refused: not an allowed peer", peer)
                self._emit("rejected_peer", "")
                return
            held = self._per_peer.get(peer, 0)
            if not listed and held >= self._settings.max_per_peer:
                self._emit("rejected_peer_limit", "")
                return
            if self._active >= self._settings.max_connections:
                self._emit("rejected_overload", "")
                return
            self._active += 1
            self._per_peer[peer] = held + 1
            try:
                await self._serve_request(reader, writer, accepted)
            finally:
                self._active -= 1
                left = self._per_peer[peer] - 1
                if left:
                    self._per_peer[peer] = left
                else:
                    del self._per_peer[peer]
        finally:
            self._tasks.discard(task)
            await _close_writer(writer)

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accepted: float
    ) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self._settings.header_timeout_s):
                env = await _read_header(reader, self._settings)
            request = _request_from_env(env, time.monotonic())
        except TimeoutError:
            logger.info("FastAGI header from %s not complete in time", peer)
            self._emit("malformed", "")
            return
        except AgiProtocolError as exc:
            logger.info("FastAGI malformed header from %s: %s", peer, exc)
            self._emit("malformed", "")
            return

        script = request.script
        handler = self._handlers.get(script)
        if handler is None:
            logger.info("FastAGI request for unknown script %r from %s", script, peer)
            self._emit("unknown_script", script)
            return

        self._emit("request", script)
        channel = AgiChannel(reader, writer, max_line_bytes=self._settings.max_line_bytes)
        budget = asyncio.timeout(self._settings.budget_s)
        try:
            async with budget:
                await handler(request, channel)
        except TimeoutError:
            if budget.expired():
                logger.warning(
                    "FastAGI %r exceeded its %.3fs budget", script, self._settings.budget_s
                )
                self._emit("budget_exceeded", script)
            else:
                logger.exception("FastAGI handler %r timed out on its own", script)
                self._emit("error", script)
        except AgiHangup as exc:
            logger.debug("FastAGI %r: channel hung up: %s", script, exc)
            self._emit("hangup", script)
        except Exception:
            logger.exception("FastAGI handler %r failed", script)
            self._emit("error", script)
        if channel.answered_at is not None and self._on_answered is not None:
            self._on_answered(script, channel.answered_at - accepted)

    def _listed(self, peer: str) -> bool | None:
        """True: on the allow-list; False: refused by it; None: there is no allow-list."""
        if not self._allowed:
            return None
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # not an IP peer (e.g. a Unix socket): not the switch
        return any(address in network for network in self._allowed)

    def _emit(self, kind: str, script: str) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, script)
        except Exception:
            # A broken metrics hook must not take calls down with it.
            logger.exception("FastAGI on_event hook failed for %r", kind)
