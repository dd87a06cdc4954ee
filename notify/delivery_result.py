"""What one delivery attempt came to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    sent: bool
    retry: bool  # a failure worth another try later
    error: str = ""

    @classmethod
    def ok(cls) -> Result:
        return cls(True, False)

    @classmethod
    def later(cls, error: str) -> Result:
        return cls(False, True, error)

    @classmethod
    def fail(cls, error: str) -> Result:
        return cls(False, False, error)
