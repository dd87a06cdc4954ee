"""A carrier: who terminates calls for the operator, at what buy price (a rate deck in the
usual deck format, rated exactly like sell decks), with which preference and capacity, and
through which Asterisk endpoint (trunk)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from rating.codes import is_deck_name

# An endpoint name as PJSIP takes it in Dial(PJSIP/<number>@<trunk>): no '/', ',' (ARRAY()
# splits the grant on commas), '|' or ':' (they separate routes in the grant), no spaces.
TRUNK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
MAX_PRIORITY = 1_000_000
MAX_CAPACITY = 1_000_000
DEFAULT_PRIORITY = 100
# The fields of a carrier's CDR file (carrier reconciliation) and the column naming each.
CSV_FIELDS = ("number", "start", "seconds", "cost")


def csv_columns(spec: str, option: str = "csv_columns") -> dict[str, str]:
    """'number=Called,start=Date' -> {'number': 'Called', 'start': 'Date'} (only the fields
    given); CarrierError naming `option` when a part is not FIELD=COLUMN."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        field, eq, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not eq or field not in CSV_FIELDS or not column or field in out:
            raise CarrierError(option, f"{part!r}: FIELD=COLUMN once each, FIELD one of "
                               f"{', '.join(CSV_FIELDS)}")  # fmt: skip
        out[field] = column
    return out


class CarrierError(ValueError):
    """Bad carrier input; names the field."""

    code = "BAD_CARRIER"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class CarrierConflict(CarrierError):
    code = "CARRIER_EXISTS"


class CarrierNotFound(LookupError):
    code = "UNKNOWN_CARRIER"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown carrier {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Carrier:
    name: str
    deck: str  # the buy-rate deck (imported with `tollgate deck import`)
    trunk: str = ""  # the Asterisk endpoint; "" = the carrier's name
    priority: int = DEFAULT_PRIORITY  # lower is tried first among equal costs
    max_calls: int = 0  # concurrent calls; 0 = unlimited
    cps: int = 0  # new calls per second; 0 = unlimited
    disabled: bool = False
    csv_columns: str = ""  # its CDR file's column names (reconciliation); "" = ours
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def endpoint(self) -> str:
        return self.trunk or self.name

    def checked(self) -> Carrier:
        """This carrier when every field is acceptable, else CarrierError naming the field."""
        if not is_deck_name(self.name):
            raise CarrierError("name", "1-64 of letters, digits, '_', '.', '-' (not first)")
        if not is_deck_name(self.deck):
            raise CarrierError("deck", f"not a deck name: {self.deck!r}")
        if self.trunk and TRUNK.fullmatch(self.trunk) is None:
            raise CarrierError("trunk", "1-64 of letters, digits, '_', '.', '-' (not first)")
        for name, value, high in (
            ("priority", self.priority, MAX_PRIORITY),
            ("max_calls", self.max_calls, MAX_CAPACITY),
            ("cps", self.cps, MAX_CAPACITY),
        ):
            if not 0 <= value <= high:
                raise CarrierError(name, f"must be between 0 and {high}")
        mapping = csv_columns(self.csv_columns)
        canonical = ",".join(f"{k}={mapping[k]}" for k in CSV_FIELDS if k in mapping)
        return self if canonical == self.csv_columns else replace(self, csv_columns=canonical)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["endpoint"] = self.endpoint
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value is not None else None
        return out


# what the authorization reads (the CDR file's columns are not its business, and an older
# process reading the copy during an upgrade knows only these)
MIRRORED = tuple(f.name for f in fields(Carrier)
                 if f.name not in ("created_at", "updated_at", "csv_columns"))  # fmt: skip


def carriers_to_json(carriers: list[Carrier]) -> str:
    """The copy Redis holds (one document: carriers are few, read together)."""
    return json.dumps([{k: getattr(c, k) for k in MIRRORED} for c in carriers], sort_keys=True)


def carriers_from_json(text: str | bytes) -> list[Carrier]:
    return [Carrier(**item) for item in json.loads(text)]
