"""One declaration per endpoint: its route, who may call it, its parameters and body (as
pydantic models, named by the handler's own signature) and its responses. The request is
checked from the declaration before the handler runs, and the OpenAPI document
(panel_api.openapi) is generated from the same declarations, so the two cannot drift.

Why plain pydantic v2 and not aiohttp-pydantic: aiohttp-pydantic wants class-based views
and answers validation errors in its own shape (a list of pydantic errors), and its
document is built by its own sub-application; the panel keeps function handlers, its
access checks in order (403/404 before 400), its stable error codes and the body
{"error": {...}}. Pydantic's models and JSON Schema output do the typing and the schema;
the glue here (routing, error mapping) is small and ours."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar, get_type_hints

from aiohttp import web
from pydantic import BaseModel, ValidationError

from panel_api.auth import operator, path_account, readable_account
from panel_api.errors import BadRequest, Handler
from panel_api.inputs import INVALID_AMOUNT, Input

In = TypeVar("In", bound=Input)
Declared = Callable[..., Awaitable[web.StreamResponse]]


class Access(Enum):
    PUBLIC = "public"  # no token (the route name starts with 'public:')
    TOKEN = "token"  # any token; an {account} in the path must be readable by it
    OPERATOR = "operator"  # an operator token


@dataclass(frozen=True)
class Reply:
    """One documented success status: a model (JSON), CSV, or nothing."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    csv: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the documented path: {name} without the route's regular expressions
    route: str  # the aiohttp route: the path, with its regular expressions if any
    op_id: str
    summary: str
    tags: tuple[str, ...]
    access: Access
    replies: tuple[Reply, ...]
    errors: tuple[int, ...]
    path_model: type[Input] | None = None
    query_model: type[Input] | None = None
    body_model: type[Input] | None = None
    body_media: str = "application/json"
    body_required: bool = True
    actions: Mapping[str, str] = field(default_factory=dict)  # {action} -> its summary


ARGUMENTS = {"path", "query", "body"}  # what a handler may ask for, besides the account
AUTH = (400, 401, 404, 429, 503)  # what any authenticated request may get
OPERATOR_ERRORS = (*AUTH, 403)


class Api:
    """The panel's endpoints: a RouteTableDef for aiohttp and the declarations for the
    document, filled by the `get`/`post`/`patch` decorators."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes = web.RouteTableDef()
        self.endpoints: list[Endpoint] = []

    def get(self, path: str, summary: str, **how: Any) -> Callable[[Declared], Handler]:
        return self._declare("get", path, summary, **how)

    def post(self, path: str, summary: str, **how: Any) -> Callable[[Declared], Handler]:
        return self._declare("post", path, summary, **how)

    def patch(self, path: str, summary: str, **how: Any) -> Callable[[Declared], Handler]:
        return self._declare("patch", path, summary, **how)

    def delete(self, path: str, summary: str, **how: Any) -> Callable[[Declared], Handler]:
        return self._declare("delete", path, summary, **how)

    def _declare(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        op_id: str | None = None,
        access: Access = Access.TOKEN,
        ok: type[BaseModel] | None = None,
        replies: tuple[Reply, ...] = (),
        errors: tuple[int, ...] = (),
        route: str | None = None,
        actions: Mapping[str, str] | None = None,
        body_media: str = "application/json",
        body_model: type[Input] | None = None,
        body_required: bool = True,
    ) -> Callable[[Declared], Handler]:
        def decorate(handler: Declared) -> Handler:
            hints = get_type_hints(handler)
            wanted = set(inspect.signature(handler).parameters) - {"request"}
            # a handler asking for what the declaration cannot give fails at import, not later
            if unknown := wanted - ARGUMENTS - ({"account"} if "{account}" in path else set()):
                raise TypeError(f"{handler.__name__}: nothing supplies {sorted(unknown)}")
            base = OPERATOR_ERRORS if access is Access.OPERATOR else AUTH
            endpoint = Endpoint(
                method=method,
                path=path,
                route=_route(route or path, actions),
                op_id=op_id or handler.__name__,
                summary=summary,
                tags=(self.tag,),
                access=access,
                replies=replies or (Reply(200, "OK", ok),),
                errors=errors if access is Access.PUBLIC else (*base, *errors),
                path_model=hints.get("path"),
                query_model=hints.get("query"),
                body_model=body_model or hints.get("body"),
                body_media=body_media,
                body_required=body_required,
                actions=actions or {},
            )
            self.endpoints.append(endpoint)

            async def checked(request: web.Request) -> web.StreamResponse:
                return await handler(request, **await _arguments(endpoint, request, wanted))

            checked.__name__ = handler.__name__
            checked.__doc__ = handler.__doc__
            public = access is Access.PUBLIC
            self.routes.route(method.upper(), endpoint.route, name=_name(endpoint.op_id, public))(
                checked
            )
            return checked

        return decorate


def _name(op_id: str, public: bool) -> str | None:
    return f"public:{op_id}" if public else None


def _route(path: str, actions: Mapping[str, str] | None) -> str:
    if actions:
        return path.replace("{action}", "{action:" + "|".join(actions) + "}")
    return path


async def _arguments(endpoint: Endpoint, request: web.Request, wanted: set[str]) -> dict[str, Any]:
    """Access first (403, and 404 for an account the token may not read), then the path,
    the query and the body, each a 400 naming the parameter or field at fault."""
    out: dict[str, Any] = {}
    if endpoint.access is Access.OPERATOR:
        operator(request)
    if "{account}" in endpoint.path:
        reader = path_account if endpoint.access is Access.OPERATOR else readable_account
        out["account"] = reader(request)
    if endpoint.path_model is not None:
        out["path"] = _parameters(endpoint.path_model, request.match_info)
    if endpoint.query_model is not None:
        out["query"] = _parameters(endpoint.query_model, request.query)
    if endpoint.body_model is not None and endpoint.body_media == "application/json":
        out["body"] = check_body(endpoint.body_model, await json_object(request))
    return {name: value for name, value in out.items() if name in wanted}


def _parameters(model: type[In], given: Mapping[str, str]) -> In:
    """Path or query parameters: the first value of each; an empty one is absent."""
    names = [f.alias or name for name, f in model.model_fields.items()]
    present = {name: given[name] for name in names if given.get(name)}
    try:
        return model.model_validate(present)
    except ValidationError as exc:
        raise _bad(exc, "parameter") from None


def check_body(model: type[In], body: dict[str, Any]) -> In:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _bad(exc, "field") from None


def _bad(exc: ValidationError, kind: str) -> BadRequest:
    """The first problem pydantic found, in the API's words and codes."""
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else "body"
    why = "required" if error["type"] == "missing" else str(error["msg"])
    if error["type"] == INVALID_AMOUNT:
        code = "INVALID_AMOUNT"
    else:
        code = "INVALID_PARAMETER" if kind == "parameter" else "INVALID_FIELD"
    return BadRequest(f"{name}: {why}", {kind: name, "why": why}, code=code)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is an empty object)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", code="INVALID_JSON") from None
    except RecursionError:  # '[' x 100000: the parser's own stack, not ours to raise
        raise BadRequest("the body is nested too deeply", code="INVALID_JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="INVALID_JSON")
    return body
