"""How the panel listens: time limits for slow clients and a cap on open connections.

A client must send a whole request (line and headers) within the header timeout of opening
the connection or of its previous answer (aiohttp's keep-alive timer, which also runs until
the first request), and a request with a body must be read and answered within the body
timeout. Beyond the connection cap a new connection gets a bare 503 and is closed, so idle
sockets cannot exhaust the process."""

from __future__ import annotations

import asyncio

from aiohttp import web

from panel_api.context import PANEL
from panel_api.errors import Handler, RequestTimeout
from panel_api.settings import PanelSettings

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


def runner(app: web.Application, panel: PanelSettings) -> web.AppRunner:
    return web.AppRunner(app, access_log=None, keepalive_timeout=panel.header_timeout_s)


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
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self.host, self.requested_port, reuse_address=True, backlog=self._backlog
        )
