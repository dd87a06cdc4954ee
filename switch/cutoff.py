"""Cutting the running calls of accounts that are no longer active.

A suspension through the call path reaches running calls at once (the ARI session watch,
the abuse runner's hook), but one decided elsewhere — the scheduler's warning deadlines, a
trial's end, an operator's status change — only stops new calls: a running call would go on
to the end of its grant. Whoever holds this switch's ARI finds the open outbound calls of
suspended or closed accounts in the ledger and hangs their channels up, which works for any
channel (FastAGI or Stasis); the hangup handler then reports the outcome and the call is
settled and billed as any other. That is `tollgate serve`'s sweeper (every sweep, reusing
the open calls it already read; the one place with ARI in docker-compose.yml) and, where
the scheduler has ARI too, its `cut_calls` job. Emergency calls and inbound calls are never
cut (a suspension blocks outgoing calls only). Only this switch's calls
(TOLLGATE_SWITCH_HOST) are reachable through its ARI; another switch's are counted and left
to that switch's tollgate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rating.ledger import Ledger
from switch.ari import AriClient, AriError

log = logging.getLogger("tollgate.switch.cutoff")


@dataclass(slots=True)
class Cut:
    hung_up: list[str] = field(default_factory=list)  # account/call id
    gone: list[str] = field(default_factory=list)  # ended meanwhile
    elsewhere: list[str] = field(default_factory=list)  # another switch's
    failed: list[str] = field(default_factory=list)  # ARI refused or unreachable

    def summary(self) -> str:
        parts = [
            f"{name}: {', '.join(items)}"
            for name, items in (
                ("hung up", self.hung_up),
                ("gone", self.gone),
                ("on another switch", self.elsewhere),
                ("failed", self.failed),
            )
            if items
        ]
        return "; ".join(parts)


def _cuttable(record: dict[str, str]) -> bool:
    """An open outbound call that is not an emergency call."""
    return (
        record.get("state") == "open"
        and record.get("direction", "out") != "in"
        and record.get("emergency", "") != "1"
    )


async def to_cut(
    ledger: Ledger, records: list[dict[str, str]] | None = None
) -> list[dict[str, str]]:
    """The open outbound, non-emergency calls whose account is suspended or closed, among
    `records` (the ledger's open calls, read here when not given). One pipelined status read
    of their accounts, none when no outbound call runs."""
    if records is None:
        records = await ledger.open_sessions()
    calls = [r for r in records if _cuttable(r)]
    if not calls:
        return []
    statuses = await ledger.account_statuses(sorted({r.get("account", "") for r in calls}))
    return [r for r in calls if statuses.get(r.get("account", "")) in ("suspended", "closed")]


async def cut(ledger: Ledger, ari: AriClient, calls: list[dict[str, str]]) -> Cut:
    """Hang up each call's channel (its A leg: Asterisk ends the B leg with it)."""
    done = Cut()
    own = ledger.switch_of("")
    for r in sorted(calls, key=lambda r: (r.get("account", ""), r.get("call_id", ""))):
        name = f"{r.get('account', '')}/{r.get('call_id', '')}"
        if r.get("switch", "") not in ("", own):
            done.elsewhere.append(name)
            continue
        try:
            gone = not await ari.hangup(r.get("a_chan") or r.get("call_id", ""))
        except AriError as exc:
            log.error("could not hang up %s: %s", name, exc)
            done.failed.append(name)
            continue
        (done.gone if gone else done.hung_up).append(name)
        if not gone:
            log.warning("account %s is not active: hung up %s", r.get("account"), name)
    return done
