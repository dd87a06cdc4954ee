"""The panel's own settings, read from TOLLGATE_PANEL_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.env import EnvReader


@dataclass(frozen=True)
class PanelSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9465  # 0 = no metrics listener
    rate_per_s: float = 20.0  # sustained requests per second per token
    burst: int = 40  # requests a token may make at once above the sustained rate
    max_upload_bytes: int = 32 * 1024 * 1024  # rate decks are uploaded whole
    csv_batch: int = 2000  # rows fetched from the server-side cursor at a time
    download_ttl_s: int = 60  # life of a one-time CSV download link
    last_used_flush_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PanelSettings:
        get = EnvReader("TOLLGATE_PANEL_", env).get

        def port(raw: str) -> int:
            value = int(raw)
            if not 0 <= value <= 65535:
                raise ValueError("must be 0..65535")
            return value

        def positive(raw: str) -> float:
            value = float(raw)
            if not value > 0:
                raise ValueError("must be > 0")
            return value

        def count(raw: str) -> int:
            value = int(raw)
            if value <= 0:
                raise ValueError("must be > 0")
            return value

        base = cls()
        return cls(
            host=get("HOST", str, base.host),
            port=get("PORT", port, base.port),
            metrics_host=get("METRICS_HOST", str, base.metrics_host),
            metrics_port=get("METRICS_PORT", port, base.metrics_port),
            rate_per_s=get("RATE", positive, base.rate_per_s),
            burst=get("BURST", count, base.burst),
            max_upload_bytes=get("MAX_UPLOAD", count, base.max_upload_bytes),
            csv_batch=get("CSV_BATCH", count, base.csv_batch),
            download_ttl_s=get("DOWNLOAD_TTL_S", count, base.download_ttl_s),
        )
