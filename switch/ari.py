"""A small Asterisk REST Interface client: REST calls and the event websocket.

The websocket reconnects with backoff; every (re)connection is announced to the consumer
as a `Connected` marker, because events missed while it was down are not replayed and the
consumer must reconcile."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

log = logging.getLogger("tollgate.switch.ari")


class AriError(RuntimeError):
    """A REST call failed; `status` is the HTTP status (0 when Asterisk was unreachable)."""

    def __init__(self, status: int, method: str, path: str, body: str = "") -> None:
        super().__init__(f"ARI {method} {path} -> {status} {body[:200]}")
        self.status = status
        self.method = method
        self.path = path
        self.body = body


@dataclass(frozen=True)
class AriSettings:
    url: str = ""  # http://127.0.0.1:8088 ; empty = ARI session control off
    user: str = "tollgate"
    password: str = ""
    app: str = "tollgate"
    request_timeout_s: float = 3.0
    backoff_min_s: float = 0.2
    backoff_max_s: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AriSettings:
        env = os.environ if env is None else env
        return cls(
            url=env.get("TOLLGATE_ARI_URL", "").rstrip("/"),
            user=env.get("TOLLGATE_ARI_USER", "tollgate"),
            password=env.get("TOLLGATE_ARI_PASSWORD", ""),
            app=env.get("TOLLGATE_ARI_APP", "tollgate"),
        )


@dataclass(frozen=True)
class Connected:
    """The event websocket is (again) connected: reconcile now."""

    attempt: int


class AriClient:
    def __init__(self, settings: AriSettings, session: aiohttp.ClientSession | None = None):
        self.settings = settings
        self._own = session is None
        self._session = session or aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(settings.user, settings.password)},
            timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s),
        )
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._own:
            await self._session.close()

    # -- REST ------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        url = f"{self.settings.url}/ari{path}"
        try:
            async with self._session.request(method, url, params=params, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise AriError(resp.status, method, path, text)
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(0, method, path, str(exc)) from None

    async def channels(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/channels") or [])

    async def originate(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app_args: str,
        caller_id: str = "",
        originator: str = "",
        timeout_s: int = 30,
    ) -> dict[str, Any]:
        params = {
            "endpoint": endpoint,
            "app": self.settings.app,
            "appArgs": app_args,
            "channelId": channel_id,
            "timeout": str(timeout_s),
        }
        if caller_id:
            params["callerId"] = caller_id
        if originator:
            params["originator"] = originator
        return dict(await self.request("POST", "/channels", params))

    async def ring(self, channel: str) -> None:
        await self.request("POST", f"/channels/{quote(channel, safe='')}/ring")

    async def answer(self, channel: str) -> None:
        await self.request("POST", f"/channels/{quote(channel, safe='')}/answer")

    async def hangup(self, channel: str, reason: str = "normal") -> bool:
        """Hang a channel up; False when it was already gone."""
        try:
            await self.request("DELETE", f"/channels/{quote(channel, safe='')}", {"reason": reason})
        except AriError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def set_var(self, channel: str, name: str, value: str) -> bool:
        try:
            await self.request(
                "POST",
                f"/channels/{quote(channel, safe='')}/variable",
                {"variable": name, "value": value},
            )
        except AriError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def bridge(self, bridge_id: str, channels: list[str]) -> None:
        await self.request("POST", "/bridges", {"type": "mixing", "bridgeId": bridge_id})
        await self.request(
            "POST",
            f"/bridges/{quote(bridge_id, safe='')}/addChannel",
            {"channel": ",".join(channels)},
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self.request("DELETE", f"/bridges/{quote(bridge_id, safe='')}")
        except AriError as exc:
            if exc.status != 404:
                raise

    # -- events ----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Connected | dict[str, Any]]:
        """Events of our Stasis app, forever; reconnects with backoff."""
        backoff = self.settings.backoff_min_s
        attempt = 0
        ws_url = self.settings.url.replace("http", "ws", 1) + "/ari/events"
        while True:
            attempt += 1
            try:
                async with self._session.ws_connect(
                    ws_url,
                    params={"app": self.settings.app},
                    heartbeat=5.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                ) as ws:
                    self._ws = ws
                    backoff = self.settings.backoff_min_s
                    log.info("ARI events connected (%s, attempt %d)", ws_url, attempt)
                    yield Connected(attempt)
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            try:
                                yield json.loads(msg.data)
                            except json.JSONDecodeError:
                                log.warning("ARI sent a non-JSON event: %.200s", msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("ARI events: %s; retrying in %.1f s", exc, backoff)
            finally:
                self._ws = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max_s)
