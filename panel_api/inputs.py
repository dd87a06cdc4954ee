"""Input field types: each one checks a value and documents itself, so the OpenAPI document
and the validation come from one declaration.

Every check is our own function (a pydantic plain validator), not pydantic's coercion:
numbers go through the guarded plain-number parsers (core.plain via rating.money: no
exponent, no '_', ASCII digits only, checked before conversion), text is held to what
PostgreSQL can store, and the reason given is a short phrase naming what is wrong."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from rating.accounts import ACCOUNT_ID
from rating.money import MoneyError, parse_micro, parse_whole

MAX_INT = 1_000_000  # counts and limits: far inside PostgreSQL's integer
MAX_TEXT = 1024
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # as CDRs: nothing plausible lies outside
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
ACCOUNT_PATTERN = ACCOUNT_ID.pattern  # what path_account and the store accept
NUMBER_PATTERN = r"^\+?[0-9]{1,15}$"
PERIOD_PATTERN = r"^(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])$"
INVALID = "invalid"
INVALID_AMOUNT = "invalid_amount"  # answered with the code INVALID_AMOUNT


class Input(BaseModel):
    """Base of parameter and body models: unknown names are ignored, as before."""

    model_config = ConfigDict(frozen=True)


def refuse(why: str, kind: str = INVALID) -> PydanticCustomError:
    # the reason goes in through the context: it may hold braces of its own
    return PydanticCustomError(kind, "{why}", {"why": why})


@dataclass(frozen=True)
class Checked:
    """Annotated metadata: `parse` validates (and converts) a present value; `schema` is
    what the document says of it. A null or absent value is None, or 'required'."""

    parse: Callable[[Any], Any]
    schema: dict[str, Any] = field(default_factory=dict)
    optional: bool = True

    def required(self) -> Checked:
        return replace(self, optional=False)

    def run(self, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise refuse("required")
        return self.parse(value)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.run)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


def text(value: Any) -> str:
    """Text PostgreSQL can store: no NUL, valid Unicode (no lone surrogates), bounded."""
    if not isinstance(value, str):
        raise refuse("expected string")
    if len(value) > MAX_TEXT:
        raise refuse(f"longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise refuse("contains a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise refuse("not valid Unicode") from None
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse("expected integer")
    if not 0 <= value <= MAX_INT:
        raise refuse(f"must be between 0 and {MAX_INT}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise refuse("expected boolean")
    return value


def _money(allow_negative: bool) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            return parse_micro(text(value), allow_negative=allow_negative)
        except MoneyError as exc:
            raise refuse(exc.why, INVALID_AMOUNT) from None

    return parse


def _prefixes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise refuse("expected array")
    if not all(isinstance(p, str) for p in value):
        raise refuse("expected an array of strings")
    return tuple(p.lstrip("+") for p in value if p)


def whole(low: int, high: int) -> Checked:
    """A whole number given as text (a query parameter)."""

    def parse(value: Any) -> int:
        try:  # not int(): it takes '1_0', other scripts' digits; '--5' made it raise
            return parse_whole(text(value), low=low, high=high)
        except MoneyError as exc:
            raise refuse(exc.why) from None

    return Checked(parse, {"type": "integer", "minimum": low, "maximum": high})


def choice(options: Iterable[str], schema: dict[str, Any] | None = None) -> Checked:
    ordered = sorted(options)

    def parse(value: Any) -> str:
        if value not in ordered:
            raise refuse(f"one of {', '.join(ordered)}")
        return str(value)

    return Checked(parse, schema or {"type": "string", "enum": ordered})


def string(max_length: int = MAX_TEXT, **schema: Any) -> Checked:
    """Free text up to `max_length`, documented with `schema` (a pattern the store then
    checks, say)."""

    def parse(value: Any) -> str:
        if len(text(value)) > max_length:
            raise refuse(f"longer than {max_length} characters")
        return str(value)

    return Checked(parse, {"type": "string", "maxLength": max_length, **schema})


def parse_moment(raw: str) -> datetime:
    """An RFC 3339 date-time, or a date (its midnight, UTC). No zone means UTC."""
    try:
        if len(raw) == 10:
            at = datetime.combine(date.fromisoformat(raw), time(), UTC)
        else:
            at = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise refuse("expected a date (YYYY-MM-DD) or an RFC 3339 date-time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        raise refuse("out of range") from None
    if not EARLIEST <= at <= LATEST:
        raise refuse(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return at


def parse_day_or_moment(raw: str) -> date:
    """A date (YYYY-MM-DD) kept as a date, for the caller to place in a time zone; or an
    RFC 3339 date-time, as parse_moment."""
    if len(raw) != 10:
        return parse_moment(raw)
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise refuse("expected a date (YYYY-MM-DD) or an RFC 3339 date-time") from None
    if not EARLIEST.date() < day < LATEST.date():
        raise refuse(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return day


SEPARATORS = re.compile(r"[\s().-]")


def _number(value: Any) -> str:
    """Digits of a called number to look for; separators people type are dropped."""
    digits = SEPARATORS.sub("", text(value))
    if not re.fullmatch(NUMBER_PATTERN, digits):
        raise refuse("1-15 digits, optionally after '+'")
    return digits.lstrip("+")


def _bands(value: Any) -> Any:
    raw = text(value)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise refuse('a JSON object: {"day": ["mon-fri 08:00-18:00"], ...}') from None


def _decimals(value: Any) -> int:
    try:
        return parse_whole(text(value), low=0, high=6)
    except MoneyError:
        raise refuse("a whole number 0..6") from None


TEXT = string()
# a query parameter's text: short enough that every one of an operation's, percent-encoded
# (12 bytes for a 4-byte character), fits the panel's request line (server.MAX_LINE_BYTES)
QUERY_TEXT = string(400)
COUNT = Checked(_count, {"type": "integer", "minimum": 0, "maximum": MAX_INT})
FLAG = Checked(_flag, {"type": "boolean"})
MONEY_IN = Checked(
    _money(False),
    {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,6})?$", "examples": ["20.00"]},
)
SIGNED_MONEY_IN = Checked(
    _money(True), {"type": "string", "pattern": r"^-?[0-9]{1,10}(\.[0-9]{1,6})?$"}
)
PREFIXES = Checked(
    _prefixes, {"type": "array", "items": {"type": "string", "pattern": NUMBER_PATTERN}}
)
MOMENT = Checked(lambda v: parse_moment(text(v)), {"type": "string", "format": "date-time"})
DAY_OR_MOMENT = Checked(
    lambda v: parse_day_or_moment(text(v)),
    {"type": "string", "examples": ["2026-11-01", "2026-11-01T00:00:00+01:00"]},
)
NUMBER = Checked(_number, {"type": "string", "pattern": NUMBER_PATTERN})
BANDS = Checked(_bands, {"type": "string", "description": 'JSON: {"day": ["mon-fri 08:00-18:00"]}'})
DECIMALS = Checked(_decimals, {"type": "string", "pattern": "^[0-6]$"})


class StatusChange(Input):
    """The body of a change of status (an account's, a finding's): why, for the record."""

    reason: Annotated[str | None, TEXT] = None


class FindingChange(StatusChange):
    """A finding's change of status; `false_alarm` (lift only): it was not abuse, so the
    finding is no earlier episode for the repeat rule."""

    false_alarm: bool = False
