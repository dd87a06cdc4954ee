"""The customer portal and the operator console: plain HTML, CSS and JavaScript from the
package, no build step."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
# The page is ours alone: no inline script, nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

routes = web.RouteTableDef()


@routes.get("/", name="public:page")
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={**HEADERS, "Cache-Control": "no-cache"})


@routes.get("/console", name="public:console")
async def console(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "console.html", headers={**HEADERS, "Cache-Control": "no-cache"}
    )


@routes.get(r"/static/{name:[a-z0-9_-]+\.(?:js|css|svg)}", name="public:static")
async def static(request: web.Request) -> web.FileResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={**HEADERS, "Cache-Control": "max-age=300"})
