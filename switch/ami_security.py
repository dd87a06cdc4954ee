"""Asterisk's security events over AMI (class "security"): failed SIP authentications.

PJSIP reports a wrong password as ChallengeResponseFailed (or InvalidPassword) and an unknown
login as InvalidAccountID, each with the login (AccountID) and where the request came from
(RemoteAddress "IPV4/UDP/203.0.113.7/5060"). `failures` yields them as they happen, on one
long-lived manager connection that logs in with Events=security."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from switch.ami import AmiError, AmiSession, AmiSettings

FAILURE_EVENTS = {
    "ChallengeResponseFailed": "bad_password",
    "InvalidPassword": "bad_password",
    "InvalidAccountID": "unknown_login",
    "FailedACL": "acl",
}


@dataclass(frozen=True)
class AuthFailure:
    kind: str  # bad_password | unknown_login | acl
    login: str
    address: str  # the source IP ('' when Asterisk gave none)
    service: str  # PJSIP, AMI, ...


def address_of(remote: str) -> str:
    """'IPV4/UDP/203.0.113.7/5060' -> '203.0.113.7' ('IPV6/UDP/::1/5060' -> '::1')."""
    parts = remote.split("/")
    return "/".join(parts[2:-1]) if len(parts) >= 4 else ""


def failure_of(event: dict[str, str]) -> AuthFailure | None:
    kind = FAILURE_EVENTS.get(event.get("Event", ""))
    if kind is None:
        return None
    return AuthFailure(
        kind=kind,
        login=event.get("AccountID", ""),
        address=address_of(event.get("RemoteAddress", "")),
        service=event.get("Service", ""),
    )


async def failures(settings: AmiSettings) -> AsyncIterator[AuthFailure]:
    """Failed authentications as Asterisk reports them; raises AmiError when the
    connection is lost (the caller reconnects)."""
    session = await AmiSession.open(settings, events="security")
    try:
        while True:
            try:
                event = await session.next_event()
            except OSError as exc:
                raise AmiError("event", str(exc) or type(exc).__name__) from None
            found = failure_of(event)
            if found is not None:
                yield found
    finally:
        await session.close()


async def watch(
    settings: AmiSettings, queue: asyncio.Queue[AuthFailure], backoff_max_s: float = 10
) -> None:
    """Forever: put every failure on `queue`, reconnecting with backoff."""
    delay = 0.5
    while True:
        try:
            async for failure in failures(settings):
                delay = 0.5
                await queue.put(failure)
        except AmiError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max_s)
