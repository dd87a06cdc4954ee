"""One Redis connection on which concurrent commands are pipelined (the authorize hot path).

redis-py gives each in-flight command a pooled connection of its own, one write and one
read per command, through several layers of Python (retry, pool, events, observability).
Here every command issued during one event-loop iteration leaves in one write on one
connection and the replies are matched in order (RESP replies come in the order of the
commands): Redis parses and answers a batch per read, both sides make a fraction of the
system calls, and the Python per command is a hiredis pack, a future and a deque. Measured
with bench/authorize.py: 2.4-7.9x redis-py's authorizations/s in the same process and run.

Only what the authorize path needs: plain TCP (`redis://`, with AUTH and SELECT from the
URL), EVALSHA with the script loaded on NOSCRIPT. Anything else (TLS, a Unix socket, Redis
Cluster redirections) is `Unusable`, and the caller keeps using redis-py."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Arg = str | bytes | int
# hiredis packs RESP in C; its stub types the argument as a one-element tuple
_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command


class PipeConnectionError(RedisConnectionError, ConnectionError):
    """The connection failed or was lost with the command unanswered: callers that treat
    either redis-py's or the builtin ConnectionError as an outage see one."""


class Unusable(RuntimeError):
    """This Redis needs what the pipe does not speak (e.g. cluster redirections)."""


# Replies that mean "this is a cluster node, ask another one": redis-py's cluster client
# follows them, this pipe does not.
_REDIRECTIONS = ("MOVED ", "ASK ", "CLUSTERDOWN", "CROSSSLOT")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.sent_at: collections.deque[float] = collections.deque()  # loop time, per waiter
        self.watchdog: asyncio.TimerHandle | None = None
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiters:  # a reply nobody asked for: the stream cannot be trusted
                self.fail(PipeConnectionError("Redis sent a reply nobody asked for"))
                return
            waiter = self.waiters.popleft()
            self.sent_at.popleft()
            if not waiter.done():  # a caller that gave up still had its reply in the stream
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(PipeConnectionError(f"Redis connection lost: {exc or 'closed by Redis'}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def fail(self, exc: Exception) -> None:
        self.transport = None
        self.sent_at.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()


class CommandPipe:
    """`await pipe.execute("GET", "k")`; `await pipe.evalsha(sha, source, keys, args)`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        connect_timeout_s: float = 2.0,
        reply_timeout_s: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.db = username, password, db
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> CommandPipe | None:
        """A pipe for a plain `redis://` URL; None for anything it cannot speak."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname or parts.query:
            return None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            return None
        return cls(
            parts.hostname,
            parts.port or 6379,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(path or 0),
            **kwargs,
        )

    async def execute(self, *args: Arg | memoryview) -> Any:
        """Send one command (pipelined with whatever else this loop iteration sends) and
        return its reply. An error reply raises ResponseError; no reply within
        `reply_timeout_s` drops the connection: everything pending on it fails with
        PipeConnectionError."""
        proto = self._proto if self._proto is not None and self._proto.transport else None
        if proto is None:
            proto = await self._connect()
        reply = await self._send(proto, _pack(args))
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def evalsha(
        self, sha: str, source: Arg | memoryview, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> Any:
        """EVALSHA; on NOSCRIPT (a restarted or flushed Redis) load the script and retry."""
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self.execute(*command)
        except ResponseError as exc:
            text = str(exc)
            if text.startswith(_REDIRECTIONS):
                raise Unusable(f"Redis answered {text!r}: a cluster needs its own client") from None
            if not text.startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", source)
        return await self.execute(*command)

    async def batch(self, *commands: Sequence[Arg | memoryview]) -> list[Any]:
        """Send `commands` back to back in one write on one connection (nothing of this
        pipe can come between them) and return their replies in order; an error reply is
        returned as a ResponseError, not raised. WAIT needs this: it counts the replicas
        holding what its own connection wrote."""
        proto = self._proto if self._proto is not None and self._proto.transport else None
        if proto is None:
            proto = await self._connect()
        waiters = [self._queue(proto, _pack(tuple(c))) for c in commands]
        replies = await asyncio.gather(*waiters)
        return [ResponseError(str(r)) if isinstance(r, hiredis.ReplyError) else r for r in replies]

    def sibling(self) -> CommandPipe:
        """Another pipe to the same Redis, on a connection of its own."""
        return CommandPipe(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            db=self.db,
            connect_timeout_s=self.connect_timeout_s,
            reply_timeout_s=self.reply_timeout_s,
        )

    async def _send(self, proto: _Protocol, packed: bytes) -> Any:
        return await self._queue(proto, packed)

    def _queue(self, proto: _Protocol, packed: bytes) -> asyncio.Future[Any]:
        """Queue one command for this loop iteration's write; its reply's future."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        proto.waiters.append(waiter)
        proto.sent_at.append(loop.time())
        if not proto.out:  # the first command of this loop iteration: flush after it
            loop.call_soon(proto.flush)
        proto.out.append(packed)
        if proto.watchdog is None:
            proto.watchdog = loop.call_later(self.reply_timeout_s, self._watch, proto)
        return waiter

    def _watch(self, proto: _Protocol) -> None:
        """Drop a connection whose oldest command got no reply within `reply_timeout_s`.

        Kept apart from the callers' own deadlines: callers that give up sooner (the FastAGI
        budget is 0.5 s) must not leave a silent connection in place for everyone after
        them; a Redis that answers nothing for seconds is sick or gone."""
        proto.watchdog = None
        if not proto.sent_at:
            return
        waited = asyncio.get_running_loop().time() - proto.sent_at[0]
        if waited >= self.reply_timeout_s:
            self._drop(proto, f"no reply within {self.reply_timeout_s} s")
        else:
            proto.watchdog = asyncio.get_running_loop().call_later(
                self.reply_timeout_s - waited, self._watch, proto
            )

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and self._proto.transport is not None:
                return self._proto  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            except (OSError, TimeoutError) as exc:
                raise PipeConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
                ) from None
            hello: list[tuple[str, tuple[Arg, ...]]] = []
            if self.password is not None:
                user = (self.username,) if self.username else ()  # ACL user, else Redis 5 style
                hello.append(("AUTH", (*user, self.password)))
            if self.db:
                hello.append(("SELECT", (self.db,)))
            for name, args in hello:
                reply = await self._send(proto, _pack((name, *args)))
                if isinstance(reply, hiredis.ReplyError):
                    self._drop(proto, str(reply))
                    raise PipeConnectionError(f"Redis refused {name}: {reply}")
            self._proto = proto
            return proto

    def _drop(self, proto: _Protocol, why: str) -> None:
        transport = proto.transport
        proto.fail(PipeConnectionError(f"Redis connection dropped: {why}"))
        if transport is not None:
            transport.abort()
        if self._proto is proto:
            self._proto = None

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
            await proto.lost
