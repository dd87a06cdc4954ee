"""What the session controller needs to know about a carrier leg that failed: its SIP code
and whether the call moves on to the next carrier of its grant.

Asterisk (20.12+, 22.2+) puts the last SIP response of an off-nominally ended PJSIP channel
in ChannelDestroyed's `tech_cause`; without it only causes that name a carrier's own
failure unambiguously are read back (34 congestion: 503, 38 network out of order: 502).
A ring timeout or a cancelled INVITE carries no code and never fails over, as in the
dialplan (where `HANGUPCAUSE(...,tech)` is empty then)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.env import SettingsError

ENV_CODES = "TOLLGATE_FAILOVER_CODES"
DEFAULT_CODES = "503|502|408|480"
# The callee's answer, not the carrier's trouble: another carrier would get the same.
NEVER = frozenset({486, 404})
_CAUSE_CODES = {34: 503, 38: 502}
_CODE = re.compile(r"^[1-6][0-9][0-9]$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def failover_codes(env: Mapping[str, str]) -> frozenset[int]:
    """TOLLGATE_FAILOVER_CODES as the dialplan's global: SIP codes joined by '|'."""
    raw = env.get(ENV_CODES, DEFAULT_CODES)
    codes = [c.strip() for c in raw.split("|") if c.strip()]
    bad = [c for c in codes if not _CODE.match(c)]
    if bad:
        raise SettingsError(ENV_CODES, f"not SIP codes: {', '.join(bad)}")
    found = frozenset(int(c) for c in codes)
    if found & NEVER:
        raise SettingsError(ENV_CODES, "486 and 404 are the callee's answer: never a failover")
    return found


def sip_code(event: Mapping[str, Any]) -> int | None:
    """The SIP code a carrier leg ended with (None when it carries none)."""
    tech = str(event.get("tech_cause", "") or "")
    if _CODE.match(tech):
        return int(tech)
    try:
        cause = int(event.get("cause", 0) or 0)
    except (TypeError, ValueError):
        return None
    return _CAUSE_CODES.get(cause)


def routes_arg(arg: str) -> tuple[str, ...]:
    """The grant's ROUTES as Stasis passes them ('|'-joined endpoints); () = single trunk,
    also when any of them is not an endpoint name (never dialled as given)."""
    routes = tuple(r for r in arg.split("|") if r)
    return routes if all(_ENDPOINT.match(r) for r in routes) else ()
