"""SMTP settings from TOLLGATE_SMTP_* environment variables: the one SMTP configuration,
for the documents and the notices alike (both go through the outbox).

The notices' former variables (TOLLGATE_NOTIFY_SMTP_HOST, _PORT, _USER, _PASSWORD, _TLS,
_TIMEOUT_S and TOLLGATE_NOTIFY_MAIL_FROM) are still read, as deprecated aliases, when the
TOLLGATE_SMTP_* one is not set; each use is logged once."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import SettingsError

log = logging.getLogger("tollgate.notify")

# TOLLGATE_SMTP_* name -> its deprecated alias
ALIASES = {
    "TOLLGATE_SMTP_HOST": "TOLLGATE_NOTIFY_SMTP_HOST",
    "TOLLGATE_SMTP_PORT": "TOLLGATE_NOTIFY_SMTP_PORT",
    "TOLLGATE_SMTP_USER": "TOLLGATE_NOTIFY_SMTP_USER",
    "TOLLGATE_SMTP_PASSWORD": "TOLLGATE_NOTIFY_SMTP_PASSWORD",
    "TOLLGATE_SMTP_FROM": "TOLLGATE_NOTIFY_MAIL_FROM",
    "TOLLGATE_SMTP_TIMEOUT_S": "TOLLGATE_NOTIFY_SMTP_TIMEOUT_S",
}
OLD_TLS = "TOLLGATE_NOTIFY_SMTP_TLS"  # none | starttls | tls (here two flags)
OLD_DEFAULT_FROM = "tollgate@localhost"  # what the notices' own mailer sent from
_warned: set[str] = set()


def _deprecated(old: str, new: str) -> None:
    if old not in _warned:
        _warned.add(old)
        log.warning("%s is deprecated: set %s instead", old, new)


def with_aliases(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with each deprecated alias moved to its TOLLGATE_SMTP_* name (the
    new name wins when both are set)."""
    out = dict(env)
    for new, old in ALIASES.items():
        if env.get(old, "") and not env.get(new, ""):
            _deprecated(old, new)
            out[new] = env[old]
    mode = env.get(OLD_TLS, "").strip().lower()
    if not mode and env.get(ALIASES["TOLLGATE_SMTP_HOST"], ""):
        mode = "starttls"  # the notices' mailer's default
    if mode and not env.get("TOLLGATE_SMTP_TLS", "") and not env.get("TOLLGATE_SMTP_STARTTLS", ""):
        if mode not in ("none", "starttls", "tls"):
            raise SettingsError(OLD_TLS, f"none, starttls or tls, not {mode!r}")
        _deprecated(OLD_TLS, "TOLLGATE_SMTP_TLS / TOLLGATE_SMTP_STARTTLS")
        out["TOLLGATE_SMTP_TLS"] = "1" if mode == "tls" else "0"
        out["TOLLGATE_SMTP_STARTTLS"] = "1" if mode == "starttls" else "0"
    if env.get(ALIASES["TOLLGATE_SMTP_HOST"], "") and not out.get("TOLLGATE_SMTP_FROM", ""):
        out["TOLLGATE_SMTP_FROM"] = OLD_DEFAULT_FROM  # an old notices-only configuration
    return out


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
        env = with_aliases(os.environ if env is None else env)

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
