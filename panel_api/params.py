"""Parameters read outside a declared endpoint: a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic_core import PydanticCustomError

from panel_api.errors import BadRequest
from panel_api.inputs import parse_moment


def invalid(name: str, why: str) -> BadRequest:
    return BadRequest(f"{name}: {why}", {"parameter": name, "why": why}, code="INVALID_PARAMETER")


def moment(query: Mapping[str, str], name: str) -> datetime | None:
    """An RFC 3339 date-time, or a date (its midnight, UTC); '' or absent is None."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        return parse_moment(raw)
    except PydanticCustomError as exc:
        raise invalid(name, exc.message()) from None
