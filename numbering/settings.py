"""Numbering settings, from TOLLGATE_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.env import EnvReader


@dataclass(frozen=True)
class NumberingSettings:
    home_country: str = "PL"  # numbers of other countries are 'foreign' (§5.4)
    quarantine_days: int = 90  # a released number rests before it is given to anyone else

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NumberingSettings:
        get = EnvReader("TOLLGATE_", env).get

        def days(raw: str) -> int:
            value = int(raw)
            if not 0 <= value <= 3650:
                raise ValueError("0..3650 days")
            return value

        return cls(
            home_country=get("DEFAULT_COUNTRY", str, cls.home_country).upper(),
            quarantine_days=get("NUMBER_QUARANTINE_DAYS", days, cls.quarantine_days),
        )
