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
    # availability: a slow or greedy client must not hold what others need
    pool_acquire_timeout_s: float = 2.0  # then 503 + Retry-After, never a hang
    export_pool_size: int = 3  # downloads' own connections, apart from interactive ones
    exports_per_token: int = 2  # downloads one token may run at once
    send_timeout_s: float = 30.0  # a download whose client reads nothing this long is cut
    send_buffer_bytes: int = 256 * 1024  # kernel send buffer of a download's socket
    header_timeout_s: float = 10.0  # a connection's request (line + headers) must arrive
    body_timeout_s: float = 30.0  # a request with a body must be read and answered
    max_connections: int = 512  # open client connections; more are refused with 503
    auth_failures: int = 20  # failed authentications per client address and window
    auth_failure_window_s: int = 60
    login_failures: int = 5  # wrong passwords in a row that lock a login
    login_lock_s: int = 900  # for this long
    session_s: int = 8 * 3600  # life of a token a sign-in gives
    # the portal's address as customers reach it (links in password-reset mail); empty: no
    # reset by e-mail (requests get 403 RESET_NOT_CONFIGURED)
    public_url: str = ""
    reset_ttl_s: int = 3600  # life of a password-reset link
    reset_per_hour: int = 3  # reset links one login may be sent per hour
    # addresses of reverse proxies whose X-Forwarded-For names the client
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")

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

        def addresses(raw: str) -> tuple[str, ...]:
            return tuple(a.strip() for a in raw.split(",") if a.strip())

        def count(raw: str) -> int:
            value = int(raw)
            if value <= 0:
                raise ValueError("must be > 0")
            return value

        def url(raw: str) -> str:
            value = raw.strip().rstrip("/")
            if value and not value.startswith(("https://", "http://")):
                raise ValueError("must start with https:// (or http://)")
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
            pool_acquire_timeout_s=get(
                "POOL_ACQUIRE_TIMEOUT_S", positive, base.pool_acquire_timeout_s
            ),
            export_pool_size=get("EXPORT_POOL_SIZE", count, base.export_pool_size),
            exports_per_token=get("EXPORTS_PER_TOKEN", count, base.exports_per_token),
            send_timeout_s=get("SEND_TIMEOUT_S", positive, base.send_timeout_s),
            send_buffer_bytes=get("SEND_BUFFER", count, base.send_buffer_bytes),
            header_timeout_s=get("HEADER_TIMEOUT_S", positive, base.header_timeout_s),
            body_timeout_s=get("BODY_TIMEOUT_S", positive, base.body_timeout_s),
            max_connections=get("MAX_CONNECTIONS", count, base.max_connections),
            auth_failures=get("AUTH_FAILURES", count, base.auth_failures),
            auth_failure_window_s=get("AUTH_FAILURE_WINDOW_S", count, base.auth_failure_window_s),
            login_failures=get("LOGIN_FAILURES", count, base.login_failures),
            login_lock_s=get("LOGIN_LOCK_S", count, base.login_lock_s),
            session_s=get("SESSION_S", count, base.session_s),
            public_url=get("PUBLIC_URL", url, base.public_url),
            reset_ttl_s=get("RESET_TTL_S", count, base.reset_ttl_s),
            reset_per_hour=get("RESET_PER_HOUR", count, base.reset_per_hour),
            trusted_proxies=get("TRUSTED_PROXIES", addresses, base.trusted_proxies),
        )
