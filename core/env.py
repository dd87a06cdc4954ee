"""Typed settings from TOLLGATE_* environment variables, shared by every settings object."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is wrong; `variable` names it as the operator wrote it."""

    def __init__(self, variable: str, why: str) -> None:
        super().__init__(f"{variable}: {why}")
        self.variable = variable


class EnvReader:
    """`EnvReader("TOLLGATE_CDR_").get("BATCH_SIZE", int, 500)`: unset or empty gives the
    default; a value that does not convert raises SettingsError naming the variable."""

    def __init__(self, prefix: str, env: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.env = os.environ if env is None else env

    def get(self, name: str, conv: Callable[[str], T], default: T) -> T:
        variable = f"{self.prefix}{name}"
        raw = self.env.get(variable)
        if raw is None or raw == "":
            return default
        try:
            return conv(raw)
        except ValueError as exc:
            raise SettingsError(variable, f"bad value {raw!r} ({exc})") from None
