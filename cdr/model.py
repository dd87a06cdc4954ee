"""A CDR: one call that reached rating, as the ledger wrote it to its stream.

`Cdr.from_stream` is the only way in from Redis: it checks every field the ledger writes
and converts it (money stays integer micro-units, epoch milliseconds become UTC datetimes)
so that whatever it accepts PostgreSQL accepts too."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

FINAL_STATES = frozenset({"denied", "finished"})  # never replaced once written
STATES = FINAL_STATES | {"expired"}  # expired: the sweeper released an orphaned call

CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
LATEST_MS = (LATEST - EPOCH) // timedelta(milliseconds=1)
EARLIEST_MS = (EARLIEST - EPOCH) // timedelta(milliseconds=1)
INT32 = 2**31 - 1
INT64 = 2**63 - 1
MAX_TEXT = 1024


class BadCdr(ValueError):
    """A stream entry that cannot become a row; `field` names the culprit."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


@dataclass(frozen=True, slots=True)
class Cdr:
    call_id: str
    started_at: datetime
    account: str
    state: str
    ended_at: datetime
    decision: str = ""
    reason: str = ""
    detail: str = ""
    granted_s: int = 0
    reserved: int = 0
    raw: str = ""
    e164: str = ""
    number_class: str = ""
    caller: str = ""
    switch: str = ""
    prefix: str = ""
    rate_name: str = ""
    deck: str = ""
    deck_version: int = 0
    currency: str = ""
    authorized_at: datetime | None = None
    answered_at: datetime | None = None
    billsec: int = 0
    answered: bool = False
    rated_cost: int = 0
    cost: int = 0
    disposition: str = ""
    hangup_cause: str = ""
    emergency: bool = False
    unauthorized: bool = False
    prior_state: str = ""
    rdnis: str = ""
    direction: str = "out"  # "in": a carrier's call to the account's number
    routes: str = ""  # the carriers the grant offered, in try order ("" = the single trunk)
    carrier: str = ""  # the carrier the call went out through last
    attempts: str = ""  # every failed attempt: `carrier:sip code[:start ms:pdd ms];`
    buy_deck: str = ""  # the carrier's deck the buy cost was rated with
    buy_deck_version: int = 0
    buy_cost: int = 0  # micro-units; the margin is cost - buy_cost
    carrier_timing: str = ""  # `start ms:pdd ms` of the attempt on `carrier`
    bundle: str = ""  # the plan's bundle the call drew on: `assignment.allowance:YYYY-MM`
    bundle_seconds: int = 0  # seconds taken from it (cost is then the overage only)
    stream_id: str = ""
    written_at: datetime | None = None  # set by PostgreSQL

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes a call unique: its switch, its account and the switch's call id."""
        return (self.switch, self.account, self.call_id)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def supersedes(self, other: Cdr) -> bool:
        """Whether this record of a call replaces `other`: only a final one replaces a
        non-final one (a late finish after the sweeper's expiry)."""
        return self.final and not other.final

    def row(self) -> tuple[Any, ...]:
        """Values in `COLUMNS` order."""
        return tuple(getattr(self, name) for name in COLUMNS)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Cdr:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    @classmethod
    def from_stream(cls, entry: Mapping[str, str], stream_id: str = "") -> Cdr:
        """Validate and convert one stream entry (decoded field -> value). Raises BadCdr."""
        f = _Fields(entry)
        call_id = f.text("call_id")
        if not CALL_ID.match(call_id):
            raise BadCdr("call_id", f"{call_id!r} is not a call id")
        account = f.text("account")
        if not account:
            raise BadCdr("account", "missing")
        state = f.text("state")
        if state not in STATES:
            raise BadCdr("state", f"{state!r} is not one of {sorted(STATES)}")
        ended_at = f.time("ended_at")
        if ended_at is None:
            raise BadCdr("ended_at", "missing")
        authorized_at = f.time("authorized_at")
        billsec = f.integer("billsec", INT32)
        # Deterministic per call: the partition key must not move between two records of it.
        started_at = authorized_at or ended_at - timedelta(seconds=billsec)
        if started_at < EARLIEST:
            raise BadCdr("ended_at", "billsec reaches before the year 2000")
        return cls(
            call_id=call_id,
            started_at=started_at,
            account=account,
            state=state,
            ended_at=ended_at,
            decision=f.text("decision"),
            reason=f.text("reason"),
            detail=f.text("detail"),
            granted_s=f.integer("granted", INT32),
            reserved=f.integer("reserved", INT64),
            raw=f.text("raw"),
            e164=f.text("e164"),
            number_class=f.text("class"),
            caller=f.text("caller"),
            switch=f.text("switch"),
            prefix=f.text("prefix"),
            rate_name=f.text("rate_name"),
            deck=f.text("deck"),
            deck_version=f.integer("deck_version", INT32),
            currency=f.text("currency"),
            authorized_at=authorized_at,
            answered_at=f.time("answered_at"),
            billsec=billsec,
            answered=f.flag("answered"),
            rated_cost=f.integer("rated_cost", INT64),
            cost=f.integer("cost", INT64),
            disposition=f.text("disposition"),
            hangup_cause=f.text("hangup_cause"),
            emergency=f.flag("emergency"),
            unauthorized=f.flag("unauthorized"),
            prior_state=f.text("prior_state"),
            rdnis=f.text("rdnis"),
            direction="in" if f.text("direction") == "in" else "out",
            routes=f.text("routes"),
            carrier=f.text("carrier_used"),
            attempts=f.text("attempts"),
            buy_deck=f.text("buy_deck"),
            buy_deck_version=f.integer("buy_deck_version", INT32),
            buy_cost=f.integer("buy_cost", INT64),
            carrier_timing=f.text("carrier_timing"),
            bundle=f.text("bundle"),
            bundle_seconds=f.integer("bundle_seconds", INT32),
            stream_id=stream_id,
        )


# Columns the writer copies; written_at is left to the database.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Cdr) if f.name != "written_at")

Row = tuple[Any, ...]  # a CDR's values in COLUMNS order, as `Cdr.row()` gives them
CALL_ID_AT = COLUMNS.index("call_id")
STARTED_AT = COLUMNS.index("started_at")
ACCOUNT_AT = COLUMNS.index("account")
STATE_AT = COLUMNS.index("state")
SWITCH_AT = COLUMNS.index("switch")
STREAM_ID_AT = COLUMNS.index("stream_id")

# The stream's name of each column `stream_row` reads as it is (texts), and the numbers.
_RENAMED = {"number_class": "class", "granted_s": "granted", "carrier": "carrier_used"}
_DERIVED = {"started_at", "stream_id"}
_INTEGERS = {
    "granted_s": INT32,
    "reserved": INT64,
    "deck_version": INT32,
    "billsec": INT32,
    "rated_cost": INT64,
    "cost": INT64,
    "buy_deck_version": INT32,
    "buy_cost": INT64,
    "bundle_seconds": INT32,
}
_TIMES = {"ended_at", "authorized_at", "answered_at"}
_FLAGS = {"answered", "emergency", "unauthorized"}
_SOURCES = tuple(_RENAMED.get(c, c) for c in COLUMNS if c not in _DERIVED)
_FIELD_AT = {c: i for i, c in enumerate(c for c in COLUMNS if c not in _DERIVED)}
_INT_FIELDS = tuple((_FIELD_AT[c], limit) for c, limit in _INTEGERS.items())
_TIME_FIELDS = tuple(_FIELD_AT[c] for c in _TIMES)
_FLAG_FIELDS = tuple(_FIELD_AT[c] for c in _FLAGS)
_ENDED, _AUTHORIZED, _BILLSEC = (_FIELD_AT[c] for c in ("ended_at", "authorized_at", "billsec"))
_DIRECTION = _FIELD_AT["direction"]
_NUMBERS: Callable[[list[Any]], tuple[str, ...]] = itemgetter(
    *(i for i, _ in _INT_FIELDS), *_TIME_FIELDS
)
_US = timedelta(microseconds=1)


_CALL_ID_FIELD, _ACCOUNT_FIELD, _STATE_FIELD = (
    _FIELD_AT[c] for c in ("call_id", "account", "state")
)
_PLAN_CACHE = 64  # distinct field orders kept; the ledger writes one or two

# A call's identity in a row (`Cdr.identity`), picked in C: the writer sorts batches by it.
row_identity: Callable[[Row], tuple[str, str, str]] = itemgetter(SWITCH_AT, ACCOUNT_AT, CALL_ID_AT)


def row_is_final(row: Row) -> bool:
    return row[STATE_AT] in FINAL_STATES


def stream_row(entry: Mapping[str, str], stream_id: str = "") -> Row:
    """`Cdr.from_stream(entry, stream_id).row()`, several times faster (the CDR writer's
    hot path): the checks run over all fields at once, and an entry failing any of them is
    converted by `Cdr.from_stream`, which raises BadCdr naming the field."""
    get = entry.get
    values: list[Any] = [get(name, "") for name in _SOURCES]
    text = "".join(values)
    if "\x00" in text:
        return Cdr.from_stream(entry, stream_id).row()
    return _converted(values, stream_id, len(text)) or Cdr.from_stream(entry, stream_id).row()


def raw_row(raw: Mapping[Any, Any], stream_id: str) -> Row | None:
    """`stream_row` of a stream entry as the Redis client returns it (bytes field -> bytes
    value), without decoding it into a dict first; see `flat_row`."""
    return flat_row([x for pair in raw.items() for x in pair], stream_id)


def flat_row(flat: Sequence[Any], stream_id: str) -> Row | None:
    """`stream_row` of a stream entry as Redis sends it (field, value, field, value...,
    bytes): the values are decoded in one go and picked by a plan made once per order of
    the fields. None when the entry needs the careful path (`stream_row` of
    `Entry.fields()`): bytes that are not UTF-8, a NUL, a field twice, str from a decoding
    client, or any check failing (which then names the field)."""
    keys = tuple(flat[0::2])
    pick = _PLANS.get(keys) or _plan(keys)
    if pick is None:
        return None
    try:
        text = b"\x00".join(flat[1::2]).decode()
    except (UnicodeDecodeError, TypeError):
        return None
    values = text.split("\x00")
    if len(values) != len(keys):
        return None  # a NUL inside a value
    values.append("")  # what a missing field reads
    return _converted(list(pick(values)), stream_id, len(text))


_Pick = Callable[[list[str]], tuple[str, ...]]
_PLANS: dict[tuple[Any, ...], _Pick] = {}


def _plan(keys: tuple[Any, ...]) -> _Pick | None:
    """Where each source field sits in an entry whose fields come in this order."""
    try:
        names = [k.decode() for k in keys]
    except (UnicodeDecodeError, AttributeError):
        return None
    if len(set(names)) != len(names):
        return None
    at = {name: i for i, name in enumerate(names)}
    missing = len(names)  # the "" appended after the values
    pick: _Pick = itemgetter(*(at.get(name, missing) for name in _SOURCES))
    if len(_PLANS) >= _PLAN_CACHE:
        _PLANS.clear()
    _PLANS[keys] = pick
    return pick


def _converted(values: list[Any], stream_id: str, length: int) -> Row | None:
    """The row of Python values (`Cdr.row()`) of source values in `_SOURCES` order, or None
    when a check fails: `_checked_text`'s checks (one set of them for both fast paths),
    then its text converted (the careful path's speed matters less)."""
    row = _checked_text(values, stream_id, length)
    if row is None:
        return None
    typed: list[Any] = list(row)
    for i in _ROW_INTS:
        typed[i] = int(typed[i])
    for i in _ROW_TIMES:
        v = typed[i]
        if v is not None:
            typed[i] = EPOCH + int(v) * _US
    for i in _ROW_FLAGS:
        typed[i] = typed[i] == "1"
    return tuple(typed)


_ROW_INTS = tuple(COLUMNS.index(c) for c in _INTEGERS)
_ROW_TIMES = tuple(COLUMNS.index(c) for c in (*_TIMES, "started_at"))
_ROW_FLAGS = tuple(COLUMNS.index(c) for c in _FLAGS)


# -- text rows: what the CDR writer copies ------------------------------------------------------


def flat_text_row(flat: Sequence[Any], stream_id: str) -> Row | None:
    """`text_row(flat_row(flat, stream_id))` without building a Python value per field:
    what the ledger wrote is checked like `flat_row` does and kept as text (times in epoch
    microseconds, None when absent) for PostgreSQL to convert (cdr/store.py). None when
    the entry needs the careful path."""
    try:
        # the names in one string, hashed at once (a tuple of them hashes each name); the
        # count tells names apart that only join alike (no cached name holds a NUL)
        names = (len(flat), b"\x00".join(flat[0::2]))
        pick = _JOINED_PLANS.get(names) or _joined_plan(names, flat)
        if pick is None:
            return None
        text = b"\x00".join(flat[1::2]).decode()
    except (UnicodeDecodeError, TypeError):
        return None
    values = text.split("\x00")
    if len(values) * 2 != len(flat):
        return None  # a NUL inside a value
    values.append("")  # what a missing field reads
    return _checked_text(list(pick(values)), stream_id, len(text))


_JOINED_PLANS: dict[tuple[int, bytes], _Pick] = {}


def _joined_plan(names: tuple[int, bytes], flat: Sequence[Any]) -> _Pick | None:
    keys = tuple(flat[0::2])
    if any(b"\x00" in k for k in keys):
        return None
    pick = _PLANS.get(keys) or _plan(keys)
    if pick is not None:
        if len(_JOINED_PLANS) >= _PLAN_CACHE:
            _JOINED_PLANS.clear()
        _JOINED_PLANS[names] = pick
    return pick


def _checked_text(values: list[Any], stream_id: str, length: int) -> Row | None:
    """The checks of both fast paths, on source values in `_SOURCES` order (texts without
    NUL, `length` characters in all), by kind from one table each: `_INT_FIELDS` (digits
    within a limit), `_TIME_FIELDS` (epoch milliseconds within EARLIEST..LATEST),
    `_FLAG_FIELDS` (empty, 0 or 1). The row stays text, as `text_row` writes it: numbers
    as digits, times in epoch microseconds (None when absent), flags 1 or 0. None when a
    check fails: the caller then lets `Cdr.from_stream` name the field. Each field is
    checked and converted in one pass: this is the CDR writer's hot path."""
    if (
        (length > MAX_TEXT and max(map(len, values)) > MAX_TEXT)
        or not CALL_ID.match(values[_CALL_ID_FIELD])
        or not values[_ACCOUNT_FIELD]
        or values[_STATE_FIELD] not in STATES
        or not values[_ENDED]
    ):
        return None
    # every number and time is ASCII digits or empty: checked for all of them at once
    digits = "".join(_NUMBERS(values))
    if digits and not (digits.isascii() and digits.isdigit()):
        return None
    for i, limit in _INT_FIELDS:
        v = values[i]
        if not v:
            values[i] = "0"
        elif len(v) > 9 and int(v) > limit:  # 9 digits fit any of the limits
            return None
    authorized = values[_AUTHORIZED]
    started = int(authorized) if authorized else int(values[_ENDED]) - int(values[_BILLSEC]) * 1000
    if started < EARLIEST_MS:
        return None
    for i in _TIME_FIELDS:
        v = values[i]
        if not v:
            values[i] = None
        elif EARLIEST_MS <= int(v) < LATEST_MS:
            values[i] = v + "000"  # microseconds, as text_row writes times
        else:
            return None
    for i in _FLAG_FIELDS:
        v = values[i]
        if v != "1":
            if v and v != "0":
                return None
            values[i] = "0"
    # what the ledger did not mark inbound (also records older than the field) is outbound
    values[_DIRECTION] = "in" if values[_DIRECTION] == "in" else "out"
    values.insert(STARTED_AT, f"{started}000")
    values.insert(STREAM_ID_AT, stream_id)
    return tuple(values)


def text_row(row: Row) -> Row:
    """A row of Python values (`Cdr.row()`) as text for the writer's text table (None
    stays NULL): numbers in digits, flags 1 or 0, times in microseconds since the epoch."""
    return tuple(map(_text_value, row))


def _text_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return str((value.astimezone(UTC) - EPOCH) // _US)
    return str(value)


class _Fields:
    """Typed access to a stream entry; absent and empty read as the zero value."""

    def __init__(self, entry: Mapping[str, str]) -> None:
        self.entry = entry

    def text(self, name: str) -> str:
        value = self.entry.get(name, "")
        if len(value) > MAX_TEXT:
            raise BadCdr(name, f"longer than {MAX_TEXT} characters")
        if "\x00" in value:
            raise BadCdr(name, "contains a NUL character")
        return value

    def integer(self, name: str, limit: int) -> int:
        value = self.entry.get(name, "")
        if value == "":
            return 0
        if not value.isascii() or not value.isdigit():
            raise BadCdr(name, f"{value[:40]!r} is not a non-negative integer")
        number = int(value)
        if number > limit:
            raise BadCdr(name, f"{number} is out of range")
        return number

    def time(self, name: str) -> datetime | None:
        if not self.entry.get(name):
            return None
        at = EPOCH + timedelta(milliseconds=self.integer(name, LATEST_MS))
        if not EARLIEST <= at < LATEST:
            raise BadCdr(name, f"{at.isoformat()} is not a plausible time")
        return at

    def flag(self, name: str) -> bool:
        value = self.entry.get(name, "")
        if value not in ("", "0", "1"):
            raise BadCdr(name, f"{value[:40]!r} is not 0 or 1")
        return value == "1"
