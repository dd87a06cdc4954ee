"""Per-account thresholds: rows of abuse_overrides (account, rule, params jsonb) laid over
the global ones. Stored values are checked when set and again when loaded."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from abuse.detectors import DETECTORS
from abuse.params import BadParams, RuleParams
from abuse.settings import AbuseSettings

log = logging.getLogger("tollgate.abuse.overrides")


@dataclass(frozen=True, slots=True)
class Override:
    account: str
    rule: str
    params: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "rule": self.rule, "params": dict(self.params)}


def check(rule: str, params: Mapping[str, Any], base: RuleParams | None = None) -> RuleParams:
    """The thresholds `params` would give; raises BadParams."""
    detector = DETECTORS.get(rule)
    if detector is None:
        raise BadParams(rule, "*", f"unknown rule; one of {', '.join(DETECTORS)}")
    return (base or detector.defaults()).merged(params, rule)


async def set_override(
    pool: asyncpg.Pool, account: str, rule: str, params: Mapping[str, Any]
) -> Override:
    check(rule, params)
    await pool.execute(
        "insert into abuse_overrides (account, rule, params) values ($1, $2, $3)"
        " on conflict (account, rule) do update set params = excluded.params, updated_at = now()",
        account,
        rule,
        json.dumps(dict(params)),
    )
    return Override(account, rule, dict(params))


async def clear_override(pool: asyncpg.Pool, account: str, rule: str) -> bool:
    status = await pool.execute(
        "delete from abuse_overrides where account = $1 and rule = $2", account, rule
    )
    return status.endswith(" 1")


async def list_overrides(pool: asyncpg.Pool, account: str | None = None) -> list[Override]:
    rows = await pool.fetch(
        "select account, rule, params from abuse_overrides"
        " where $1::text is null or account = $1 order by account, rule",
        account,
    )
    return [Override(r["account"], r["rule"], json.loads(r["params"])) for r in rows]


class Thresholds:
    """The thresholds in force per account and rule, refreshed from PostgreSQL at most every
    `settings.overrides_refresh_s`."""

    def __init__(self, pool: asyncpg.Pool, settings: AbuseSettings) -> None:
        self.pool = pool
        self.settings = settings
        self._overrides: dict[tuple[str, str], RuleParams] = {}
        self._global = {rule: settings.params(rule) for rule in DETECTORS}
        self._loaded_at: float | None = None
        self.version = object()

    async def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        fresh = (
            self._loaded_at is not None
            and now - self._loaded_at < self.settings.overrides_refresh_s
        )
        if fresh and not force:
            return
        loaded: dict[tuple[str, str], RuleParams] = {}
        for o in await list_overrides(self.pool):
            try:
                loaded[o.account, o.rule] = check(o.rule, o.params, self.settings.params(o.rule))
            except BadParams as exc:
                log.error("ignoring abuse override of %s: %s", o.account, exc)
        self._overrides = loaded
        self._loaded_at = now
        self.version = object()  # a new one at every load: what was derived from the old goes

    def params(self, account: str, rule: str) -> RuleParams:
        found = self._overrides.get((account, rule))
        return found if found is not None else self._global[rule]
