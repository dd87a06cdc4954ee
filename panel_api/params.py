"""Reading and checking request parameters: every problem is a 400 naming the parameter."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from panel_api.errors import BadRequest
from rating.money import MoneyError, parse_whole

MAX_INT = 1_000_000  # counts and limits: far inside PostgreSQL's integer
MAX_TEXT = 1024
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # as CDRs: nothing plausible lies outside
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def invalid(name: str, why: str) -> BadRequest:
    return BadRequest(f"{name}: {why}", {"parameter": name, "why": why}, code="INVALID_PARAMETER")


def moment(query: Mapping[str, str], name: str) -> datetime | None:
    """An RFC 3339 date-time, or a date (its midnight, UTC). No zone means UTC."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            at = datetime.combine(date.fromisoformat(raw), time(), UTC)
        else:
            at = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise invalid(name, "expected a date (YYYY-MM-DD) or an RFC 3339 date-time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        raise invalid(name, "out of range") from None
    if not EARLIEST <= at <= LATEST:
        raise invalid(name, f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return at


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:  # not int(): it takes '1_0', other scripts' digits; '--5' made it raise
        return parse_whole(raw, low=low, high=high)
    except MoneyError as exc:
        raise invalid(name, exc.why) from None


def text_query(query: Mapping[str, str], name: str) -> str | None:
    """A free-text parameter PostgreSQL can compare (no NUL, bounded); '' means absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return text(name, raw)
    except BadRequest as exc:
        raise invalid(name, str(exc.details.get("why", "not valid text"))) from None


def choice(query: Mapping[str, str], name: str, allowed: Iterable[str]) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    options = sorted(allowed)
    if raw not in options:
        raise invalid(name, f"one of {', '.join(options)}")
    return raw


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


def field(
    body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False
) -> Any:
    """body[name] if it has the right JSON type (booleans are not numbers), else a 400."""
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(
                f"{name}: required", {"field": name, "why": "required"}, code="INVALID_FIELD"
            )
        return None
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _wrong(name, kinds)
    if isinstance(value, str):
        text(name, value)
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_INT:
        raise BadRequest(
            f"{name}: must be between 0 and {MAX_INT}",
            {"field": name, "why": f"must be between 0 and {MAX_INT}"},
            code="INVALID_FIELD",
        )
    return value


def text(name: str, value: str) -> str:
    """Text PostgreSQL can store: no NUL, valid Unicode (no lone surrogates), bounded."""
    why = None
    if len(value) > MAX_TEXT:
        why = f"longer than {MAX_TEXT} characters"
    elif "\x00" in value:
        why = "contains a NUL character"
    else:
        try:
            value.encode()
        except UnicodeEncodeError:
            why = "not valid Unicode"
    if why is not None:
        raise BadRequest(f"{name}: {why}", {"field": name, "why": why}, code="INVALID_FIELD")
    return value


def _wrong(name: str, kinds: tuple[type, ...]) -> BadRequest:
    names = {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}
    expected = " or ".join(names.get(k, k.__name__) for k in kinds)
    return BadRequest(
        f"{name}: expected {expected}",
        {"field": name, "why": f"expected {expected}"},
        code="INVALID_FIELD",
    )
