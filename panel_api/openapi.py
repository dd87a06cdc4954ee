"""The OpenAPI 3.1 document of the panel (served at /openapi.json), generated from the
endpoint declarations (panel_api.endpoint) and their pydantic models: what is documented
is what the handlers check and answer. A schemathesis run in the tests holds the
implementation to it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from panel_api.endpoint import Endpoint
from panel_api.inputs import ACCOUNT_PATTERN, Input
from panel_api.outputs import Error

JSON = "application/json"
REF = "#/components/schemas/{model}"
MESSAGES = {
    400: "Bad request: a parameter or field is invalid (details name it)",
    401: "No token, or an unknown or revoked one",
    403: "The token's role may not do this",
    404: "Not found (a customer asking for another account gets this too)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "The rate deck is invalid (details name the file and line)",
    429: "Rate limited (requests, failed authentications or downloads): retry after Retry-After",
    502: "Asterisk refused or could not be reached",
    503: "Busy, or Redis or PostgreSQL is unreachable: retry after Retry-After",
}
HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "required": True,
            "description": "Seconds to wait",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    503: {
        "Retry-After": {
            "required": True,
            "description": "Seconds to wait",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


class Schemas(GenerateJsonSchema):
    """Pydantic's JSON Schema without the titles it derives from Python names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        out = super().model_schema(schema)
        out.pop("title", None)
        return out

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        out = super().default_schema(schema)
        if out.get("default", 0) is None:  # absent and null are one to the handlers
            del out["default"]
        return out


def _models(declared: Iterable[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    out: dict[type[BaseModel], JsonSchemaMode] = {Error: "serialization"}
    for e in declared:
        if e.body_model is not None:
            out[e.body_model] = "validation"
        for reply in e.replies:
            if reply.model is not None:
                out[reply.model] = "serialization"
    return list(out.items())


def _parameters(model: type[Input] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    whole = model.model_json_schema(schema_generator=Schemas, ref_template=REF)
    needed = set(whole.get("required", ()))  # declared without a default: the handler needs it
    out = []
    for name, schema in whole["properties"].items():
        schema = dict(schema)
        description = schema.pop("description", None)
        required = where == "path" or name in needed
        param = {"name": name, "in": where, "required": required, "schema": schema}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _errors(statuses: Iterable[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": MESSAGES[status],
            "content": {JSON: {"schema": {"$ref": REF.format(model="Error")}}},
        }
        if status in HEADERS:
            response["headers"] = HEADERS[status]
        out[str(status)] = response
    return out


def _operation(e: Endpoint, op_id: str, summary: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for reply in e.replies:
        if reply.csv:
            content = {"text/csv": {"schema": {"type": "string"}}}
        elif reply.media:
            content = {reply.media: {"schema": {"type": "string", "format": "binary"}}}
        elif reply.model is not None:
            content = {JSON: {"schema": {"$ref": REF.format(model=reply.model.__name__)}}}
        else:  # no body (204)
            responses[str(reply.status)] = {"description": reply.description}
            continue
        responses[str(reply.status)] = {"description": reply.description, "content": content}
    responses.update(_errors(e.errors))
    params = []
    if "{account}" in e.path:
        account = {"type": "string", "pattern": ACCOUNT_PATTERN}
        params.append({"name": "account", "in": "path", "required": True, "schema": account})
    params += _parameters(e.path_model, "path") + _parameters(e.query_model, "query")
    out: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": list(e.tags),
        "responses": responses,
    }
    if params:
        out["parameters"] = params
    if e.body_model is not None:
        body = {"$ref": REF.format(model=e.body_model.__name__)}
        out["requestBody"] = {
            "required": e.body_required,
            "content": {e.body_media: {"schema": body}},
        }
    if e.access.value == "public":
        out["security"] = []
    return out


def paths(declared: Iterable[Endpoint]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for e in declared:
        if e.actions:
            for action, summary in e.actions.items():
                path = e.path.replace("{action}", action)
                out.setdefault(path, {})[e.method] = _operation(e, f"{action}_{e.op_id}", summary)
        else:
            out.setdefault(e.path, {})[e.method] = _operation(e, e.op_id, e.summary)
    return out


def spec(declared: list[Endpoint]) -> dict[str, Any]:
    _, schemas = models_json_schema(_models(declared), ref_template=REF, schema_generator=Schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tollgate panel",
            "version": "1",
            "description": "Customers: balance, calls, CSV downloads. Operators: accounts,"
            " money, rate decks, running calls. Money is a decimal string; errors are"
            ' {"error": {"code", "message", "details"}} with stable codes.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas.get("$defs", {}),
        },
        "paths": paths(declared),
    }
