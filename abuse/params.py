"""Thresholds of a rule: a frozen dataclass of plain values, built from JSON-like mappings.

Global defaults are the dataclass defaults (overridable through settings); per-account
overrides from PostgreSQL are applied on top with `merged`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Self


class BadParams(ValueError):
    """A threshold mapping that does not fit the rule; `field` names the culprit."""

    def __init__(self, rule: str, field: str, why: str) -> None:
        super().__init__(f"{rule}.{field}: {why}")
        self.rule = rule
        self.field = field
        self.why = why


@dataclasses.dataclass(frozen=True)
class RuleParams:
    enabled: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rule: str = "") -> Self:
        return cls().merged(data, rule)

    def merged(self, data: Mapping[str, Any], rule: str = "") -> Self:
        """These thresholds with the values of `data` on top, type-checked."""
        rule = rule or type(self).__name__
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                raise BadParams(rule, name, f"unknown; one of {', '.join(sorted(known))}")
            changes[name] = _coerce(rule, name, known[name], value)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }


def _coerce(rule: str, name: str, default: Any, value: Any) -> Any:
    """The value in the type of the default (JSON has no tuples and mixes ints/floats)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise BadParams(rule, name, f"true or false expected, got {value!r}")
    if isinstance(value, bool):
        raise BadParams(rule, name, f"a number expected, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise BadParams(rule, name, f"a whole number >= 0 expected, got {value!r}")
    if isinstance(default, float):
        # json.loads turns 1e999 into inf: a limit nothing can reach is no limit
        if isinstance(value, int | float) and 0 <= value < math.inf:
            return float(value)
        raise BadParams(rule, name, f"a number >= 0 expected, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise BadParams(rule, name, f"a list of strings expected, got {value!r}")
    if isinstance(default, str) and isinstance(value, str):
        return value
    raise BadParams(rule, name, f"unexpected value {value!r}")
