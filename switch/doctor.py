"""`tollgate asterisk check`: is this Asterisk wired for tollgate? Each check is one item,
OK or FAIL, and a failure names its fix. Read-only: it asks ARI and AMI, never changes
anything on the switch.

What is checked (docs/asterisk-integration.md explains each fix):
- ARI answers with these credentials;
- tollgate's Stasis application is registered (a `tollgate serve` with TOLLGATE_ARI_URL is
  connected);
- the modules tollgate needs are running;
- the dialplan contexts tollgate ships are loaded (over AMI: ARI cannot list the dialplan);
- Asterisk reads the realtime SIP tables: it finds an active SIP login tollgate wrote;
- the outcome log (TOLLGATE_OUTCOME_LOG) is set and tollgate can read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from switch.ami import AmiError, AmiSession, AmiSettings
from switch.ari import AriSettings

# module -> why tollgate needs it
REQUIRED_MODULES = {
    "res_agi.so": "FastAGI: every call is authorized through it",
    "app_dial.so": "Dial(): the carrier leg",
    "func_db.so": "DB(): inbound numbers older deployments map in AstDB",
    "func_cdr.so": "CDR(): the hangup handlers put each call's outcome into its CDR",
    "cdr_custom.so": "cdr_custom: appends every outcome to the outcome log tollgate tails",
    "res_ari.so": "ARI: session control and this check",
    "res_stasis.so": "Stasis(): calls held by tollgate's session controller",
    "chan_pjsip.so": "PJSIP channels",
    "res_pjsip.so": "PJSIP",
    "res_pjsip_endpoint_identifier_user.so": "phones identified by their SIP login",
    "res_pjsip_authenticator_digest.so": "digest authentication of SIP logins",
    "res_pjsip_registrar.so": "phones register",
    "res_sorcery_realtime.so": "realtime PJSIP objects (SIP logins)",
    "res_config_pgsql.so": "the realtime tables in PostgreSQL",
    "res_prometheus.so": "Asterisk's metrics next to tollgate's",
}
REQUIRED_CONTEXTS = (
    "tollgate-outbound",
    "tollgate-emergency",
    "tollgate-finish",
    "tollgate-carrier-in",
    "tollgate-inbound",
)


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"
        return text if self.ok else f"{text}\n     fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    items: tuple[Item, ...]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)

    def text(self) -> str:
        return "\n".join(i.line() for i in self.items)

    def json(self) -> str:
        return json.dumps({"ok": self.ok, "items": [i.as_dict() for i in self.items]}, indent=2)


class Ari:
    """GETs against ARI; `None` when it did not answer 200."""

    def __init__(self, http: aiohttp.ClientSession, settings: AriSettings) -> None:
        self.http = http
        self.base = f"{settings.url}/ari"

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}") as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else None
            return resp.status, body


async def check_ari(ari: Ari) -> Item:
    fix = "set TOLLGATE_ARI_URL/USER/PASSWORD to ari.conf's user; http.conf enabled, bound"
    try:
        status, info = await ari.get("/asterisk/info")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Item("ari", False, f"unreachable at {ari.base}: {exc!r}", fix)
    if status == 401:
        return Item("ari", False, "credentials refused (401)", fix)
    if status != 200:
        return Item("ari", False, f"answered {status}", fix)
    version = (info or {}).get("system", {}).get("version", "?")
    return Item("ari", True, f"reachable, Asterisk {version}")


async def check_app(ari: Ari, app: str) -> Item:
    status, apps = await ari.get("/applications")
    names = [a.get("name") for a in apps or []]
    if status == 200 and app in names:
        return Item("stasis-app", True, f"application {app!r} registered")
    return Item(
        "stasis-app",
        False,
        f"application {app!r} not registered (have: {', '.join(map(str, names)) or 'none'})",
        "run `tollgate serve` next to this Asterisk with TOLLGATE_ARI_URL set"
        " (calls then fall back to Dial within their reserved slice)",
    )


async def check_modules(ari: Ari) -> Item:
    status, modules = await ari.get("/asterisk/modules")
    if status != 200:
        return Item("modules", False, f"cannot list modules ({status})", "check ARI first")
    running = {m.get("name") for m in modules or [] if m.get("status") == "Running"}
    missing = [m for m in REQUIRED_MODULES if m not in running]
    if not missing:
        return Item("modules", True, f"{len(REQUIRED_MODULES)} required modules running")
    why = "; ".join(f"{m} ({REQUIRED_MODULES[m]})" for m in missing)
    loads = " ".join(f"load => {m}" for m in missing)
    return Item("modules", False, f"not running: {why}", f"modules.conf: {loads}; restart")


async def check_contexts(ami: AmiSettings) -> Item:
    fix_ami = "set TOLLGATE_AMI_HOST/PORT/USER/SECRET; the manager user needs write=reporting"
    if not ami.enabled:
        return Item("contexts", False, "AMI not configured (TOLLGATE_AMI_HOST)", fix_ami)
    missing = []
    try:
        async with await AmiSession.open(ami) as session:
            for context in REQUIRED_CONTEXTS:
                try:
                    await session.action(
                        "ShowDialPlan", complete="ShowDialPlanComplete", Context=context
                    )
                except AmiError as exc:
                    if "permission" in exc.why.lower():
                        return Item("contexts", False, exc.why, fix_ami)
                    missing.append(context)
    except AmiError as exc:
        return Item("contexts", False, str(exc), fix_ami)
    if missing:
        return Item(
            "contexts",
            False,
            f"missing: {', '.join(missing)}",
            "#include tollgate's extensions.conf (configs/asterisk) and `dialplan reload`",
        )
    return Item("contexts", True, f"{len(REQUIRED_CONTEXTS)} tollgate contexts loaded")


async def check_realtime(ari: Ari, probe: str | None) -> Item:
    fix = (
        "sorcery.conf/extconfig.conf/res_pgsql.conf as in configs/asterisk, Asterisk's"
        " database role may read schema asterisk; `module reload res_config_pgsql.so`"
    )
    if probe is None:
        return Item(
            "realtime",
            False,
            "no active SIP login to look up",
            "`tollgate sip create ACCOUNT` (with TOLLGATE_PG_DSN set), then check again",
        )
    status, _ = await ari.get(f"/asterisk/config/dynamic/res_pjsip/endpoint/{probe}")
    if status == 200:
        return Item("realtime", True, f"SIP login {probe} found in PostgreSQL by Asterisk")
    return Item("realtime", False, f"Asterisk does not find SIP login {probe} ({status})", fix)


def check_outcome_log(path: str) -> Item:
    fix = (
        "set TOLLGATE_OUTCOME_LOG to Asterisk's log/cdr-custom/tollgate-outcomes.csv as this"
        " host sees it (cdr_custom.conf [tollgate-outcomes.csv]); tollgate's user must read it"
    )
    if not path:
        return Item("outcome-log", False, "TOLLGATE_OUTCOME_LOG is not set", fix)
    if os.path.isfile(path):
        if os.access(path, os.R_OK):
            return Item("outcome-log", True, f"{path} readable ({os.path.getsize(path)} bytes)")
        return Item("outcome-log", False, f"{path} is not readable by this user", fix)
    folder = os.path.dirname(path) or "."
    if os.path.isdir(folder) and os.access(folder, os.R_OK | os.X_OK):
        return Item("outcome-log", True, f"{path} not written yet (no call ended since)")
    return Item("outcome-log", False, f"no folder {folder} here", fix)


async def run_checks(
    ari_settings: AriSettings,
    ami: AmiSettings,
    probe_login: Callable[[], Awaitable[str | None]],
) -> Report:
    """Every check in order; those needing ARI are skipped (failed) when ARI is away."""
    headers = {"Authorization": aiohttp.encode_basic_auth(ari_settings.user, ari_settings.password)}
    timeout = aiohttp.ClientTimeout(total=ari_settings.request_timeout_s)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        ari = Ari(http, ari_settings)
        first = await check_ari(ari)
        items = [first]
        if first.ok:
            items += [await check_app(ari, ari_settings.app), await check_modules(ari)]
        items.append(await check_contexts(ami))
        if first.ok:
            items.append(await check_realtime(ari, await probe_login()))
    items.append(check_outcome_log(os.environ.get("TOLLGATE_OUTCOME_LOG", "")))
    return Report(tuple(items))
