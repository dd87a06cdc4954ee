"""Notification settings, from TOLLGATE_NOTIFY_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import EnvReader, SettingsError
from rating.money import MoneyError, parse_micro

_TLS = ("none", "starttls", "tls")


@dataclass(frozen=True)
class NotifySettings:
    language: str = "pl"  # accounts that set none
    thresholds: tuple[int, ...] = (10_000_000, 0)  # low balance (micro); 0 = negative
    webhook_secret: str = ""  # HMAC-SHA256 key; webhooks are never sent unsigned
    webhook_timeout_s: float = 10.0
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"
    mail_from: str = "tollgate@localhost"
    smtp_timeout_s: float = 30.0
    retry_base_s: int = 60  # first retry after this, doubling each time
    retry_max_s: int = 3600
    max_attempts: int = 8  # then the notice is failed for an operator to see
    batch: int = 200  # notices delivered per pass
    interval_s: float = 30.0  # the worker's pass interval

    def __post_init__(self) -> None:
        if self.language not in ("pl", "en"):
            raise SettingsError("TOLLGATE_NOTIFY_LANGUAGE", f"pl or en, not {self.language!r}")
        if self.smtp_tls not in _TLS:
            raise SettingsError("TOLLGATE_NOTIFY_SMTP_TLS", f"one of {', '.join(_TLS)}")
        if self.max_attempts < 1 or self.retry_base_s < 1 or self.retry_max_s < 1:
            raise SettingsError("TOLLGATE_NOTIFY_MAX_ATTEMPTS", "attempts and delays must be >= 1")

    def backoff_s(self, attempts: int) -> int:
        """Seconds before the next try after `attempts` failed ones."""
        delay: int = self.retry_base_s * 2 ** max(attempts - 1, 0)
        return min(delay, self.retry_max_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        env = os.environ if env is None else env
        r = EnvReader("TOLLGATE_NOTIFY_", env)
        base = cls()
        return cls(
            language=r.get("LANGUAGE", str, base.language),
            thresholds=r.get("THRESHOLDS", parse_thresholds, base.thresholds),
            webhook_secret=r.get("WEBHOOK_SECRET", str, base.webhook_secret),
            webhook_timeout_s=r.get("WEBHOOK_TIMEOUT_S", float, base.webhook_timeout_s),
            smtp_host=r.get("SMTP_HOST", str, base.smtp_host),
            smtp_port=r.get("SMTP_PORT", int, base.smtp_port),
            smtp_user=r.get("SMTP_USER", str, base.smtp_user),
            smtp_password=r.get("SMTP_PASSWORD", str, base.smtp_password),
            smtp_tls=r.get("SMTP_TLS", str, base.smtp_tls),
            mail_from=r.get("MAIL_FROM", str, base.mail_from),
            smtp_timeout_s=r.get("SMTP_TIMEOUT_S", float, base.smtp_timeout_s),
            retry_base_s=r.get("RETRY_BASE_S", int, base.retry_base_s),
            retry_max_s=r.get("RETRY_MAX_S", int, base.retry_max_s),
            max_attempts=r.get("MAX_ATTEMPTS", int, base.max_attempts),
            batch=r.get("BATCH", int, base.batch),
            interval_s=r.get("INTERVAL_S", float, base.interval_s),
        )


def parse_thresholds(text: str) -> tuple[int, ...]:
    """'10.00,0' -> (10_000_000, 0): amounts in the account's currency, highest first."""
    try:
        values = {parse_micro(p.strip(), allow_negative=True) for p in text.split(",") if p.strip()}
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    return tuple(sorted(values, reverse=True))
