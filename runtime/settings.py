"""One typed settings object, read from TOLLGATE_* environment variables."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.env import EnvReader, SettingsError
from rating.keys import DEFAULT_SHARDS, Keyspace
from rating.ledger import LedgerSettings

__all__ = ["Settings", "SettingsError"]  # SettingsError lives in core.env

REDIS_MODES = ("standalone", "cluster")


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "cluster": redis_url names any seed node of a Redis Cluster (see runtime.services)
    redis_mode: str = "standalone"
    pg_dsn: str = "postgresql://tollgate:tollgate@127.0.0.1:5432/tollgate"
    keyspace: Keyspace = field(default_factory=Keyspace)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    deck_refresh_s: float = 1.0
    sweep_interval_s: float = 5.0
    repair_interval_s: float = 60.0  # Redis checked against PostgreSQL, account by account
    # Authorizations pipelined on one connection (core.redis_pipe) instead of redis-py's
    # connection per command; off: every command through redis-py.
    redis_pipeline: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        get = EnvReader("TOLLGATE_", env).get

        def positive(raw: str) -> int:
            value = int(raw)
            if value <= 0:
                raise ValueError("must be > 0")
            return value

        def non_negative(raw: str) -> int:
            value = int(raw)
            if value < 0:
                raise ValueError("must be >= 0")
            return value

        def prefixes(raw: str) -> tuple[str, ...]:
            out = tuple(p.strip().lstrip("+") for p in raw.split(",") if p.strip())
            if not all(p.isdigit() for p in out):
                raise ValueError("comma-separated digit prefixes expected")
            return out

        def yes_no(raw: str) -> bool:
            if raw.lower() in ("yes", "true", "1", "on"):
                return True
            if raw.lower() in ("no", "false", "0", "off"):
                return False
            raise ValueError("yes or no expected")

        def mode(raw: str) -> str:
            if raw not in REDIS_MODES:
                raise ValueError(f"one of {', '.join(REDIS_MODES)}")
            return raw

        base = LedgerSettings()
        return cls(
            redis_url=get("REDIS_URL", str, cls.redis_url),
            redis_mode=get("REDIS_MODE", mode, cls.redis_mode),
            pg_dsn=get("PG_DSN", str, cls.pg_dsn),
            keyspace=Keyspace(
                get("REDIS_PREFIX", str, "tg"), get("SHARDS", positive, DEFAULT_SHARDS)
            ),
            ledger=LedgerSettings(
                max_call_s=get("MAX_CALL_S", positive, base.max_call_s),
                ring_window_s=get("RING_WINDOW_S", positive, base.ring_window_s),
                grace_s=get("GRACE_S", positive, base.grace_s),
                record_ttl_s=get("RECORD_TTL_S", positive, base.record_ttl_s),
                default_country=get("DEFAULT_COUNTRY", str, base.default_country).upper(),
                blocked_prefixes=get("BLOCKED_PREFIXES", prefixes, ()),
                refuse_unverified=get("REFUSE_UNVERIFIED", yes_no, base.refuse_unverified),
                inbound_deck=get("INBOUND_DECK", str, base.inbound_deck),
                switch_host=get("SWITCH_HOST", str, socket.gethostname()),
                wait_replicas=get("REDIS_WAIT_REPLICAS", non_negative, base.wait_replicas),
                wait_timeout_ms=get("REDIS_WAIT_TIMEOUT_MS", positive, base.wait_timeout_ms),
            ),
            deck_refresh_s=get("DECK_REFRESH_S", float, 1.0),
            sweep_interval_s=get("SWEEP_INTERVAL_S", float, 5.0),
            repair_interval_s=get("REPAIR_INTERVAL_S", float, 60.0),
            redis_pipeline=get("REDIS_PIPELINE", _flag, True),
        )


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "yes", "true", "on"):
        return True
    if raw.lower() in ("0", "no", "false", "off"):
        return False
    raise ValueError("yes or no expected")
