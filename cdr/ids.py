"""A call's claim: the statements the CDR writer uses to keep one row per call.

A call (switch, account, call_id) is claimed by its row in cdrs: each monthly partition has
a unique index on the call (migration 0090), so a second row of a call in the same month
fails the writer's insert. A second row in another month is not caught by the index; two
starts of one call differ by at most the call's length plus the reservation's expiry
(hours), so only a row within `EDGE` of its month's first or last instant can have a twin,
in the neighbouring month: `twins_elsewhere` looks there, and the writer then takes its
general path, which aligns on the first row (`align`). `cdr_ids` is a view of the claims."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from core.pg import Conn

EDGE = timedelta(days=2)  # longer than any call plus its reservation's expiry

_SAME_CALL = "c.call_id = s.call_id and c.switch = s.switch and c.account = s.account"


def claim_month(started_at: datetime) -> date:
    """The partition key of a claim: the first day of its start's UTC month."""
    at = started_at.astimezone(UTC)
    return date(at.year, at.month, 1)


Claim = tuple[str, str, str, datetime, date]


def claim(switch: str, account: str, call_id: str, started_at: datetime) -> Claim:
    return (switch, account, call_id, started_at, claim_month(started_at))


def align(stage: str) -> str:
    """Calls stored before take the start of their row, whatever its month."""
    return (
        f"update {stage} s set started_at = c.started_at from cdrs c"
        f" where {_SAME_CALL} and c.started_at <> s.started_at"
    )


def _neighbour(started_at: datetime) -> date | None:
    """The month a twin of a claim starting at `started_at` may sit in, if any."""
    at = started_at.astimezone(UTC)
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    if at - first < EDGE:
        before = first - timedelta(days=1)
        return date(before.year, before.month, 1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    if nxt - at <= EDGE:
        return nxt.date()
    return None


# One partition searched: the bounds are parameters, so PostgreSQL prunes the others.
TWINS = (
    "select 1 from cdrs c join unnest($1::text[], $2::text[], $3::text[])"
    f" as s(switch, account, call_id) on {_SAME_CALL}"
    " where c.started_at >= $4 and c.started_at < $5 limit 1"
)


async def twins_elsewhere(conn: Conn, claims: Sequence[Claim]) -> bool:
    """Whether a call of `claims` (rows as `claim` makes them) near a month's edge was
    stored in the neighbouring month: one index probe per such call, in that month's
    partition alone (one query per neighbouring month, rarely more than one)."""
    by_month: dict[date, list[Claim]] = {}
    for c in claims:
        month = _neighbour(c[3])
        if month is not None:
            by_month.setdefault(month, []).append(c)
    for month, edge in sorted(by_month.items()):
        first = datetime(month.year, month.month, 1, tzinfo=UTC)
        found = await conn.fetchval(
            TWINS,
            [c[0] for c in edge],
            [c[1] for c in edge],
            [c[2] for c in edge],
            first,
            (first + timedelta(days=32)).replace(day=1),
        )
        if found is not None:
            return True
    return False
