"""SMTP settings from TOLLGATE_SMTP_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import SettingsError


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: no mail is sent (it waits in the outbox)
    port: int = 25
    user: str = ""
    password: str = ""
    starttls: bool = False
    tls: bool = False  # implicit TLS (port 465)
    sender: str = ""  # the From address
    timeout_s: float = 30.0
    max_attempts: int = 10  # then the message is marked failed (and counted)
    backoff_s: float = 60.0  # first retry after this, doubling, at most an hour

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings:
        env = os.environ if env is None else env

        def number(key: str, default: float, low: float, high: float) -> float:
            raw = env.get(key, "")
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(key, f"not a number: {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(key, f"must be {low:g}..{high:g}, got {raw!r}")
            return value

        def flag(key: str) -> bool:
            raw = env.get(key, "").strip().lower()
            if raw not in ("", "0", "1", "true", "false", "yes", "no"):
                raise SettingsError(key, f"true or false, got {raw!r}")
            return raw in ("1", "true", "yes")

        base = cls()
        settings = cls(
            host=env.get("TOLLGATE_SMTP_HOST", "").strip(),
            port=int(number("TOLLGATE_SMTP_PORT", base.port, 1, 65535)),
            user=env.get("TOLLGATE_SMTP_USER", ""),
            password=env.get("TOLLGATE_SMTP_PASSWORD", ""),
            starttls=flag("TOLLGATE_SMTP_STARTTLS"),
            tls=flag("TOLLGATE_SMTP_TLS"),
            sender=env.get("TOLLGATE_SMTP_FROM", "").strip(),
            timeout_s=number("TOLLGATE_SMTP_TIMEOUT_S", base.timeout_s, 0.1, 600),
            max_attempts=int(number("TOLLGATE_SMTP_MAX_ATTEMPTS", base.max_attempts, 1, 1000)),
            backoff_s=number("TOLLGATE_SMTP_BACKOFF_S", base.backoff_s, 0, 3600),
        )
        if settings.host and not settings.sender:
            raise SettingsError("TOLLGATE_SMTP_FROM", "required when TOLLGATE_SMTP_HOST is set")
        if settings.tls and settings.starttls:
            raise SettingsError("TOLLGATE_SMTP_TLS", "either TLS or STARTTLS, not both")
        return settings
