"""One-time download links, so a browser can save a CSV with a plain link (no header).

POSTing asks for a link; the link holds a random ticket kept in Redis for a minute with what
to export and for whom. Using it deletes it (GETDEL), so it works once. A ticket is bound to
the token that asked for it: it is honoured only while that token is still good."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from panel_api.cdr_query import CdrFilter
from panel_api.params import moment


@dataclass(frozen=True, slots=True)
class Ticket:
    filter: CdrFilter
    token_id: str  # who asked for the link
    dialect: str = "standard"  # csv_export.DIALECTS


class Exports:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, ticket: str) -> str:
        return f"{self.prefix}:panel:export:{ticket}"

    async def issue(self, flt: CdrFilter, token_id: str, dialect: str = "standard") -> str:
        ticket = secrets.token_urlsafe(24)
        payload: dict[str, Any] = {
            "filter": flt.as_dict(),
            "account": flt.account,
            "by": token_id,
            "dialect": dialect,
        }
        await self.redis.set(self.key(ticket), json.dumps(payload), ex=self.ttl_s)
        return ticket

    async def holder(self, ticket: str) -> str | None:
        """The token a ticket was issued to, without using the ticket up."""
        raw = await self.redis.get(self.key(ticket))
        return None if raw is None else str(json.loads(raw)["by"])

    async def redeem(self, ticket: str) -> Ticket | None:
        raw = await self.redis.getdel(self.key(ticket))
        if raw is None:
            return None
        payload = json.loads(raw)
        given = payload["filter"]
        query = {k: str(v) for k, v in given.items() if v is not None}
        start, end = moment(query, "from"), moment(query, "to")
        assert start is not None and end is not None  # written by issue() above
        flt = CdrFilter(
            payload["account"],
            start,
            end,
            given["class"],
            given["number"],
            given.get("timezone", "UTC"),
        )
        return Ticket(flt, payload["by"], payload.get("dialect", "standard"))
