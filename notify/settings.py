"""Notification settings, from TOLLGATE_NOTIFY_* environment variables; e-mail goes through
the outbox with the one SMTP configuration (TOLLGATE_SMTP_*, notify/mail_settings.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.env import EnvReader, SettingsError
from notify.mail_settings import SmtpSettings
from rating.money import MoneyError, parse_micro


@dataclass(frozen=True)
class NotifySettings:
    language: str = "pl"  # accounts that set none
    thresholds: tuple[int, ...] = (10_000_000, 0)  # low balance (micro); 0 = negative
    webhook_secret: str = ""  # HMAC-SHA256 key; webhooks are never sent unsigned
    webhook_timeout_s: float = 10.0
    smtp: SmtpSettings = field(default_factory=SmtpSettings)  # e-mail: the outbox's server
    retry_base_s: int = 60  # webhooks: first retry after this, doubling each time
    retry_max_s: int = 3600
    max_attempts: int = 8  # then the notice is failed for an operator to see
    batch: int = 200  # notices delivered per pass
    interval_s: float = 30.0  # the worker's pass interval
    trial_notice_days: int = 3  # TOLLGATE_TRIAL_NOTICE_DAYS: told this long before a step

    def __post_init__(self) -> None:
        if self.language not in ("pl", "en"):
            raise SettingsError("TOLLGATE_NOTIFY_LANGUAGE", f"pl or en, not {self.language!r}")
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
            smtp=SmtpSettings.from_env(env),
            retry_base_s=r.get("RETRY_BASE_S", int, base.retry_base_s),
            retry_max_s=r.get("RETRY_MAX_S", int, base.retry_max_s),
            max_attempts=r.get("MAX_ATTEMPTS", int, base.max_attempts),
            batch=r.get("BATCH", int, base.batch),
            interval_s=r.get("INTERVAL_S", float, base.interval_s),
            trial_notice_days=EnvReader("TOLLGATE_TRIAL_", env).get(
                "NOTICE_DAYS", int, base.trial_notice_days
            ),
        )


def parse_thresholds(text: str) -> tuple[int, ...]:
    """'10.00,0' -> (10_000_000, 0): amounts in the account's currency, highest first."""
    try:
        values = {parse_micro(p.strip(), allow_negative=True) for p in text.split(",") if p.strip()}
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    return tuple(sorted(values, reverse=True))
