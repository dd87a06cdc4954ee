"""Carrier failover within one call: the carrier the switch tried failed with a failover
code, so the call's place (max calls, calls per second) moves to the next carrier of its
grant that has room, atomically in one script (`failover.lua`), idempotent on the call and
the failed position: a switch that reports the same failure twice moves nothing twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rating.keys import expiry_member
from rating.ledger import CALL_ID, Ledger, LedgerError

# Failovers whose read of the held carrier went stale (another move came between): retried.
_TRIES = 3


@dataclass(frozen=True, slots=True)
class Move:
    status: str  # MOVED, NONE (no carrier left with room), REPEAT, GONE (call not open)
    position: int  # 1-based position in the grant's routes to try next; 0 = none
    carrier: str = ""
    endpoint: str = ""

    @property
    def next(self) -> bool:
        return self.position > 0


async def fail_over(
    ledger: Ledger, account: str, call_id: str, failed: int, *, switch: str = ""
) -> Move:
    """The route at `failed` (1-based, as the switch tried them) failed: take a place on the
    next one with room, give back the one held. Capacity is counted only where authorize
    counts it (not on Redis Cluster): there the move is recorded, nothing else."""
    if not CALL_ID.match(call_id):
        raise LedgerError("BAD_CALL_ID", f"call_id {call_id!r} is not acceptable")
    if failed < 1:
        raise LedgerError("BAD_ATTEMPT", f"failed position {failed!r} is not 1 or more")
    switch = ledger.switch_of(switch)
    for _ in range(_TRIES):
        call = await ledger.call(account, call_id, switch=switch)
        if call.get("state") != "open":
            return Move("GONE", 0)
        keys, argv = await _command(ledger, account, call_id, switch, call, failed)
        res = await ledger.script("failover")(keys=keys, args=argv)
        status = _s(res[0])
        if status != "STALE":
            return Move(status, int(res[1]), _s(res[2]), _s(res[3]))
    raise LedgerError("STALE", f"call {call_id!r} kept moving between carriers")


async def _command(
    ledger: Ledger, account: str, call_id: str, switch: str, call: dict[str, str], failed: int
) -> tuple[list[str], list[str]]:
    names = [n for n in call.get("routes", "").split(",") if n]
    endpoints = call.get("endpoints", "").split("|")
    limits = {c.name: (c.max_calls, c.cps) for c in (await ledger.carriers.current())[0]}
    counted = ledger.settings.carrier_capacity
    held = call.get("carrier", "")
    keys = [ledger.keys.call(account, call_id, switch)]
    if counted:
        keys.append(ledger.keys.carrier_open(held))
    candidates = []
    for pos, (name, endpoint) in enumerate(zip(names, endpoints, strict=False), start=1):
        if pos <= failed:
            continue
        # a carrier removed since the grant: no limit known, taken as it comes
        max_calls, cps = limits.get(name, (0, 0))
        candidates.append(f"{pos}:{name}:{endpoint}:{max_calls}:{cps}")
        if counted:
            keys += [ledger.keys.carrier_open(name), ledger.keys.carrier_rate(name)]
    hold_s = ledger.settings.max_call_s + ledger.settings.ttl_extra_s
    member = expiry_member(account, switch, call_id)  # the member authorize.lua wrote
    return keys, [str(failed), member, str(hold_s), ";".join(candidates), held]


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
