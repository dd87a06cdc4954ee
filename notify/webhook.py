"""The webhook channel: a JSON POST whose body is signed with HMAC-SHA256.

The receiver checks `X-Tollgate-Signature: t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(secret, "<t>.<body>"); the time in the signature lets it refuse replays."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import aiohttp

from notify.delivery_result import Result
from notify.notices import Notice

# Answers that will not change on a retry: the notice fails at once.
_PERMANENT = frozenset({400, 401, 403, 404, 405, 410, 413, 422})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def payload(notice: Notice) -> bytes:
    return json.dumps(
        {
            "id": notice.id,
            "account": notice.account,
            "kind": notice.kind,
            "language": notice.language,
            "subject": notice.subject,
            "body": notice.body,
            "data": notice.data,
            "created_at": notice.created_at.isoformat(),
        },
        ensure_ascii=False,
        sort_keys=True,
    ).encode()


async def send(
    session: aiohttp.ClientSession, secret: str, notice: Notice, now: datetime, timeout_s: float
) -> Result:
    if not secret:
        return Result.later("TOLLGATE_NOTIFY_WEBHOOK_SECRET is not set (webhooks are signed)")
    body = payload(notice)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Tollgate-Signature": signature(secret, int(now.timestamp()), body),
        "X-Tollgate-Notice": str(notice.id),  # the receiver's dedupe key across retries
    }
    try:
        async with session.post(
            notice.recipient,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as resp:
            if 200 <= resp.status < 300:
                return Result.ok()
            why = f"HTTP {resp.status}"
            return Result.fail(why) if resp.status in _PERMANENT else Result.later(why)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Result.later(f"{type(exc).__name__}: {exc}"[:500])
