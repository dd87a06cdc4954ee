"""A carrier: who terminates calls for the operator, at what buy price (a rate deck in the
usual deck format, rated exactly like sell decks), with which preference and capacity, and
through which Asterisk endpoint (trunk)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from rating.codes import is_deck_name

# An endpoint name as PJSIP takes it in Dial(PJSIP/<number>@<trunk>): no '/', ',' (ARRAY()
# splits the grant on commas), '|' or ':' (they separate routes in the grant), no spaces.
TRUNK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
MAX_PRIORITY = 1_000_000
MAX_CAPACITY = 1_000_000
DEFAULT_PRIORITY = 100


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
        return self

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["endpoint"] = self.endpoint
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value is not None else None
        return out


MIRRORED = tuple(f.name for f in fields(Carrier) if f.name not in ("created_at", "updated_at"))


def carriers_to_json(carriers: list[Carrier]) -> str:
    """The copy Redis holds (one document: carriers are few, read together)."""
    return json.dumps([{k: getattr(c, k) for k in MIRRORED} for c in carriers], sort_keys=True)


def carriers_from_json(text: str | bytes) -> list[Carrier]:
    return [Carrier(**item) for item in json.loads(text)]
