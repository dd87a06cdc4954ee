"""A call's claim: the statements the CDR writer uses to keep one row per call.

A call (switch, account, call_id) is claimed by its row in cdrs: each monthly partition has
a unique index on the call (migration 0090), so a second row of a call in the same month
fails the writer's insert. A second row in another month is not caught by the index; two
starts of one call differ by at most the call's length plus the reservation's expiry
(hours), so only a row within `EDGE` of its month's first or last instant can have a twin,
in the neighbouring month: `twins_elsewhere` looks there, and the writer then takes its
general path, which aligns on the first row (`align`). `cdr_ids` is a view of the claims."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from core.pg import Conn

EDGE = timedelta(days=2)  # longer than any call plus its reservation's expiry

_SAME_CALL = "c.call_id = s.call_id and c.switch = s.switch and c.account = s.account"


def claim_month(started_at: datetime) -> date:
    """The partition key of a claim: the first day of its start's UTC month."""
    at = started_at.astimezone(UTC)
    return date(at.year, at.month, 1)


Call = tuple[str, str, str]  # switch, account, call id
_US = timedelta(microseconds=1)
_EDGE_US = EDGE // _US
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def edge_calls(calls: Iterable[tuple[Call, int]]) -> dict[date, list[Call]]:
    """The calls (with their start in epoch microseconds) lying within `EDGE` of their
    month's first or last instant, by the neighbouring month where a twin may sit: only
    those can have one (integers and a binary search per call: the writer's hot path)."""
    out: dict[date, list[Call]] = {}
    calls = list(calls)
    if not calls:
        return out
    starts = [us for _, us in calls]
    latest = max(starts)
    # month starts from the one before the earliest call's to the one after the latest's
    bounds = [_month(_month(min(starts)) - 1)]
    while bounds[-1] <= latest:
        bounds.append(_month(bounds[-1] + 32 * _DAY_US))
    firsts = [(_EPOCH + b * _US).date() for b in bounds]
    for call, us in calls:
        i = bisect_right(bounds, us)  # bounds[i - 1] <= us < bounds[i], i >= 2
        if us - bounds[i - 1] < _EDGE_US:
            month = firsts[i - 2]
        elif bounds[i] - us <= _EDGE_US:
            month = firsts[i]
        else:
            continue
        out.setdefault(month, []).append(call)
    return out


def _month(us: int) -> int:
    """The start of the UTC month holding `us`, both in epoch microseconds."""
    at = _EPOCH + us * _US
    return (datetime(at.year, at.month, 1, tzinfo=UTC) - _EPOCH) // _US


def align(stage: str) -> str:
    """Calls stored before take the start of their row, whatever its month."""
    return (
        f"update {stage} s set started_at = c.started_at from cdrs c"
        f" where {_SAME_CALL} and c.started_at <> s.started_at"
    )


# One partition searched: the bounds are parameters, so PostgreSQL prunes the others. One
# probe of the partition's unique index per call, forced by the lateral join: as a plain
# join, a partition not analyzed yet (estimated empty) was scanned whole against every call
# of the batch, which grew with the partition (a third of the writer's time at 40,000 rows).
TWINS = (
    "select 1 from unnest($1::text[], $2::text[], $3::text[]) as s(switch, account, call_id)"
    " cross join lateral (select 1 from cdrs c"
    f" where {_SAME_CALL} and c.started_at >= $4 and c.started_at < $5 limit 1) t limit 1"
)


async def twins_elsewhere(conn: Conn, by_month: dict[date, list[Call]]) -> bool:
    """Whether a call of `by_month` (`edge_calls`) was stored in that neighbouring month:
    one index probe per call, in that month's partition alone (one query per month, rarely
    more than one)."""
    for month, calls in sorted(by_month.items()):
        first = datetime(month.year, month.month, 1, tzinfo=UTC)
        found = await conn.fetchval(
            TWINS,
            [c[0] for c in calls],
            [c[1] for c in calls],
            [c[2] for c in calls],
            first,
            (first + timedelta(days=32)).replace(day=1),
        )
        if found is not None:
            return True
    return False
