"""How the panel listens: time limits for slow clients and a cap on open connections.

A client must send a whole request (line and headers) within the header timeout of opening
the connection or of its previous answer (aiohttp's keep-alive timer, which also runs until
the first request), and a request with a body must be read and answered within the body
timeout. Beyond the connection cap a new connection gets a bare 503 and is closed, so idle
sockets cannot exhaust the process.

A request line may be up to MAX_LINE_BYTES (every documented parameter at its longest,
percent-encoded, fits: the app then names a parameter that is too long), a header line up
to MAX_FIELD_BYTES. Beyond them, or for a request that is not HTTP at all, aiohttp answers
before any middleware: the panel's handler makes that answer its JSON error too."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from panel_api.context import PANEL
from panel_api.errors import ApiError, Handler, RequestTimeout
from panel_api.settings import PanelSettings

log = logging.getLogger("tollgate.panel")

# aiohttp's own limit is 8190 bytes: two 400-character query parameters of 4-byte
# characters, percent-encoded (12 bytes each), already pass it
MAX_LINE_BYTES = 32 * 1024
MAX_FIELD_BYTES = 8190  # a header line (a bearer token is some 50 bytes)

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


def runner(app: web.Application, panel: PanelSettings) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=panel.header_timeout_s,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
    )


def unreadable(exc: BaseException | None) -> ApiError:
    """The panel's error for a request aiohttp could not parse."""
    if isinstance(exc, LineTooLong):
        return ApiError(
            "the request line or a header line is too long",
            {"max_line_bytes": MAX_LINE_BYTES, "max_header_bytes": MAX_FIELD_BYTES},
            code="REQUEST_TOO_LONG",
        )
    return ApiError("the request is not valid HTTP", code="MALFORMED_REQUEST")


class JsonErrors(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse with the panel's
    JSON error (a stable code) rather than its plain text, and logging them as the client's
    mistake they are rather than as an error with a traceback."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        log.info("unreadable request from %s: %s", request.remote, exc)
        response = web.json_response(unreadable(exc).body(), status=status)
        response.force_close()
        return response


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request with a body is read (and answered) within the body timeout: a client that
    trickles its body cannot hold the connection."""
    if not request.body_exists:
        return await handler(request)
    deadline = asyncio.timeout(request.app[PANEL].body_timeout_s)
    try:
        async with deadline:
            return await handler(request)
    except TimeoutError:
        if not deadline.expired():
            raise  # someone else's timeout (a busy pool, say): the error middleware's
        response = RequestTimeout(
            "the request body did not arrive in time",
            {"timeout_s": request.app[PANEL].body_timeout_s},
        ).response()
        response.force_close()
        return response


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSAL)
        transport.close()


class CappedSite(web.BaseSite):
    """A TCP site that accepts at most `max_connections` client connections at once."""

    def __init__(self, run: web.BaseRunner, host: str, port: int, max_connections: int) -> None:
        super().__init__(run)
        self.host = host
        self.requested_port = port
        self.max_connections = max_connections

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the system chose for 0)."""
        server = self._server
        if not isinstance(server, asyncio.Server) or not server.sockets:
            return self.requested_port
        return int(server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up before its sites start

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.max_connections:
                return _Refuse()
            handler = server()
            # aiohttp has no hook for the replies its parser makes: the same handler, with
            # the panel's error replies (a subclass adding no state)
            handler.__class__ = JsonErrors
            return handler

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self.host, self.requested_port, reuse_address=True, backlog=self._backlog
        )
