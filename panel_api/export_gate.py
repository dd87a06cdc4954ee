"""Downloads (CSV exports, statements) on their own budget, so they cannot starve the rest.

A download holds a PostgreSQL connection for as long as its client takes to read it. They
get their own small pool, apart from the interactive requests' one, and one token may run
only a few at once; a client that stops reading is cut off after the send timeout (see
`send`), which gives its connection back."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
from aiohttp import web

from core.pg import Conn
from panel_api.errors import ApiError, Unavailable

log = logging.getLogger("tollgate.panel")

RETRY_AFTER_S = 5


class TooManyDownloads(ApiError):
    status = 429
    code = "TOO_MANY_DOWNLOADS"

    def __init__(self, running: int) -> None:
        super().__init__(
            f"this token already runs {running} downloads: finish one first",
            {"running": running, "retry_after_s": RETRY_AFTER_S},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


class ClientStalled(Exception):
    """The client read nothing for the send timeout: the transfer was cut off."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the client read nothing for {timeout_s} s")
        self.timeout_s = timeout_s


class ExportGate:
    """Per-process: the export pool is per process too, so the two budgets agree."""

    def __init__(
        self, pool: asyncpg.Pool, per_token: int, send_timeout_s: float, send_buffer: int
    ) -> None:
        self.pool = pool
        self.per_token = per_token
        self.send_timeout_s = send_timeout_s
        self.send_buffer = send_buffer
        self._running: Counter[str] = Counter()

    def running(self, token_id: str) -> int:
        return self._running[token_id]

    def check_room(self, token_id: str) -> None:
        """Raise TooManyDownloads if `token_id` runs all the downloads it may."""
        if self._running[token_id] >= self.per_token:
            raise TooManyDownloads(self._running[token_id])

    @asynccontextmanager
    async def connection(self, token_id: str) -> AsyncIterator[Conn]:
        """A connection of the export pool for one download by `token_id`."""
        self.check_room(token_id)
        self._running[token_id] += 1
        try:
            try:
                conn = await self.pool.acquire()
            except TimeoutError:
                raise Unavailable(
                    "every download slot is taken: try again shortly",
                    {"retry_after_s": RETRY_AFTER_S},
                    code="DOWNLOADS_BUSY",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                ) from None
            try:
                yield conn
            finally:
                await self.pool.release(conn)
        finally:
            self._running[token_id] -= 1
            if not self._running[token_id]:
                del self._running[token_id]

    def prepare(self, request: web.Request) -> None:
        """Bound the kernel's send buffer of a download's socket: a stalled client then holds
        little memory, and its stall shows (as a write that waits) after that much."""
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    async def send(self, request: web.Request, response: web.StreamResponse, data: bytes) -> None:
        """Write `data`, or raise ClientStalled if the client takes none of it for the send
        timeout; the caller then lets go of its cursor and calls `cut_off`."""
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await response.write(data)
        except TimeoutError:
            raise ClientStalled(self.send_timeout_s) from None

    def cut_off(self, request: web.Request, stalled: ClientStalled) -> None:
        """Abort a stalled client's connection (nothing else would: the kernel keeps a
        stalled socket open for hours). Done last: losing the connection may cancel the
        handler, which must not happen while it is still giving its connection back."""
        log.info("%s cut off: %s", request.path, stalled)
        transport = request.transport
        if transport is not None:
            transport.abort()


async def pump(
    request: web.Request,
    response: web.StreamResponse,
    gate: ExportGate,
    cursor: Any,
    first: Sequence[Any],
    batch: int,
    render: Callable[[Sequence[Any], bool], bytes],
) -> None:
    """Send `first` and every following batch of a server-side cursor, each rendered by
    `render(rows, is_first)`: PostgreSQL makes the next batch while this one goes out, and
    the event loop gets control back between batches (one batch is a few ms of work)."""
    rows, is_first = first, True
    while rows:
        following = asyncio.ensure_future(cursor.fetch(batch))
        try:
            await gate.send(request, response, render(rows, is_first))
        except BaseException:
            following.cancel()
            with suppress(asyncio.CancelledError):
                await following
            raise
        rows, is_first = await following, False
