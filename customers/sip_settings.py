"""What every SIP login's endpoint gets, from TOLLGATE_SIP_* environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.env import SettingsError

_NAME = re.compile(r"^[A-Za-z0-9_.-]*$")
_CODECS = re.compile(r"^[a-z0-9_]+(,[a-z0-9_]+)*$")


@dataclass(frozen=True)
class SipSettings:
    # The digest realm is part of every stored credential (MD5(login:realm:password)):
    # changing it invalidates every password, so set it once.
    realm: str = "tollgate"
    context: str = "tollgate-outbound"  # the dialplan context tollgate guards
    transport: str = ""  # empty: whichever transport the phone used
    codecs: str = "alaw,ulaw"
    # Session timers re-INVITE mid-call; many cheap phones get them wrong.
    timers: bool = False

    def __post_init__(self) -> None:
        for variable, value in (
            ("TOLLGATE_SIP_REALM", self.realm),
            ("TOLLGATE_SIP_CONTEXT", self.context),
            ("TOLLGATE_SIP_TRANSPORT", self.transport),
        ):
            if not _NAME.match(value) or len(value) > 80:
                raise SettingsError(variable, f"letters, digits, '_.-' only: {value!r}")
        if not self.realm:
            raise SettingsError("TOLLGATE_SIP_REALM", "must not be empty")
        if not self.context:
            raise SettingsError("TOLLGATE_SIP_CONTEXT", "must not be empty")
        if not _CODECS.match(self.codecs):
            raise SettingsError(
                "TOLLGATE_SIP_CODECS", f"comma-separated codec names: {self.codecs!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SipSettings:
        env = os.environ if env is None else env
        base = cls()
        timers = env.get("TOLLGATE_SIP_TIMERS", "").strip().lower()
        if timers not in ("", "yes", "no"):
            raise SettingsError("TOLLGATE_SIP_TIMERS", f"yes or no, not {timers!r}")
        return cls(
            realm=env.get("TOLLGATE_SIP_REALM", "") or base.realm,
            context=env.get("TOLLGATE_SIP_CONTEXT", "") or base.context,
            transport=env.get("TOLLGATE_SIP_TRANSPORT", base.transport),
            codecs=(env.get("TOLLGATE_SIP_CODECS", "") or base.codecs).replace(" ", ""),
            timers=(timers == "yes") if timers else base.timers,
        )
