"""notify's domain error."""

from __future__ import annotations


class NotifyError(ValueError):
    """Bad notification input; `field` names the culprit, `code` is stable (upper-case)."""

    def __init__(self, field: str, why: str, code: str = "BAD_NOTIFY_INPUT") -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why
        self.code = code
