"""A minimal Asterisk Manager Interface (AMI) client: just what reading and clearing AstDB
needs (Login, DBGetTree, DBDel, Logoff).

Why AMI: it is the one channel to AstDB that works on Asterisk 22 without ARI session
control and without sharing a filesystem with Asterisk (ARI's GET /asterisk/variable does not
evaluate DB_KEYS()/DB() there; the CLI socket needs the same host). One short connection per
use: no state to lose when Asterisk restarts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count

Message = dict[str, str]


class AmiError(RuntimeError):
    """An AMI action failed; `action` names it, `why` is Asterisk's message or the I/O error."""

    def __init__(self, action: str, why: str) -> None:
        super().__init__(f"AMI {action}: {why}")
        self.action = action
        self.why = why


@dataclass(frozen=True)
class AmiSettings:
    host: str = ""  # empty = AMI not configured
    port: int = 5038
    user: str = "tollgate"
    secret: str = ""
    timeout_s: float = 3.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AmiSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("TOLLGATE_AMI_HOST", ""),
            port=int(env.get("TOLLGATE_AMI_PORT", "5038") or 5038),
            user=env.get("TOLLGATE_AMI_USER", "tollgate"),
            secret=env.get("TOLLGATE_AMI_SECRET", ""),
        )


def _clean(value: str) -> str:
    """A field value must not end the line (it would start another header)."""
    return value.replace("\r", "").replace("\n", "")


class AmiSession:
    """One logged-in manager connection; use `async with AmiSession.open(settings)`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout_s = timeout_s
        self._ids = count(1)

    @classmethod
    async def open(cls, settings: AmiSettings, events: str = "off") -> AmiSession:
        try:
            async with asyncio.timeout(settings.timeout_s):
                reader, writer = await asyncio.open_connection(settings.host, settings.port)
                await reader.readline()  # "Asterisk Call Manager/x.y"
        except (OSError, TimeoutError) as exc:
            raise AmiError("connect", f"{settings.host}:{settings.port}: {exc}") from None
        session = cls(reader, writer, settings.timeout_s)
        try:
            await session.action(
                "Login", Username=settings.user, Secret=settings.secret, Events=events
            )
        except AmiError:
            await session.close()
            raise
        return session

    async def __aenter__(self) -> AmiSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            self._writer.write(b"Action: Logoff\r\n\r\n")
            self._writer.close()
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            self._writer.transport.abort()

    async def action(self, name: str, *, complete: str = "", **fields: str) -> list[Message]:
        """Send an action; its response, plus its event list up to `complete` when given."""
        action_id = f"tg-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {_clean(v)}" for k, v in fields.items()]
        try:
            async with asyncio.timeout(self._timeout_s):
                self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                await self._writer.drain()
                out: list[Message] = []
                while True:
                    msg = await self._read_message(name)
                    if msg.get("ActionID") != action_id:
                        continue  # an event or a reply to something else
                    if "Response" in msg and msg["Response"] not in ("Success", "Follows"):
                        raise AmiError(name, msg.get("Message", msg["Response"]))
                    out.append(msg)
                    if not complete or msg.get("Event") == complete:
                        return out
        except (OSError, TimeoutError) as exc:
            raise AmiError(name, str(exc) or type(exc).__name__) from None

    async def next_event(self) -> Message:
        """The next event (a session opened with events other than "off"); waits as long
        as it takes."""
        while True:
            msg = await self._read_message("event")
            if "Event" in msg:
                return msg

    async def _read_message(self, name: str) -> Message:
        msg: Message = {}
        while True:
            raw = await self._reader.readline()
            if not raw:
                raise AmiError(name, "connection closed")
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                if msg:
                    return msg
                continue
            key, _, value = line.partition(":")
            msg[key.strip()] = value.strip()

    # -- AstDB ------------------------------------------------------------------------------

    async def db_tree(self, family: str) -> dict[str, str]:
        """Every key of an AstDB family and its value (keys without the family)."""
        try:
            msgs = await self.action("DBGetTree", complete="DBGetTreeComplete", Family=family)
        except AmiError as exc:
            if "not found" in exc.why.lower():
                return {}  # an empty family is "Database entry not found"
            raise
        prefix = f"/{family}/"
        return {
            m["Key"].removeprefix(prefix): m.get("Val", "")
            for m in msgs
            if m.get("Event") == "DBGetTreeResponse" and "Key" in m
        }

    async def db_del(self, family: str, key: str) -> None:
        await self.action("DBDel", Family=family, Key=key)

    async def db_put(self, family: str, key: str, value: str) -> None:
        await self.action("DBPut", Family=family, Key=key, Val=value)
