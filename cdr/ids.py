"""Claims in `cdr_ids`: the statements the CDR writer uses to keep one row per call.

cdr_ids is partitioned by the claim's UTC month (`month`, the first day), like cdrs, so
retention drops a month of both. Its primary key (switch, account, call_id, month) makes a
second claim of a call in the same month fail the writer's COPY, as before. A second claim
in another month is not caught by the key; two starts of one call differ by at most the
call's length plus the reservation's expiry (hours), so only a claim within `EDGE` of its
month's first or last instant can have a twin, in the neighbouring month: `twins_elsewhere`
looks there, and the writer then takes its general path, which aligns on the first claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from core.pg import Conn

EDGE = timedelta(days=2)  # longer than any call plus its reservation's expiry

# The writer's COPY of new claims: these columns, rows from `claim`.
CLAIM_COLUMNS = ["switch", "account", "call_id", "started_at", "month"]

_STAGE_MONTH = "(date_trunc('month', s.started_at at time zone 'UTC'))::date"
_SAME_CALL = "i.switch = s.switch and i.account = s.account and i.call_id = s.call_id"


def claim_month(started_at: datetime) -> date:
    """The partition key of a claim: the first day of its start's UTC month."""
    at = started_at.astimezone(UTC)
    return date(at.year, at.month, 1)


Claim = tuple[str, str, str, datetime, date]


def claim(switch: str, account: str, call_id: str, started_at: datetime) -> Claim:
    return (switch, account, call_id, started_at, claim_month(started_at))


def claim_ids(stage: str) -> str:
    """The general path's claim of the calls in `stage` that no month has claimed yet (a
    call claimed in any month keeps that claim: ALIGN then moves the row to it)."""
    return (
        f"insert into cdr_ids (switch, account, call_id, started_at, month)"
        f" select s.switch, s.account, s.call_id, s.started_at, {_STAGE_MONTH} from {stage} s"
        f" where not exists (select 1 from cdr_ids i where {_SAME_CALL})"
        " order by s.switch, s.account, s.call_id"
        " on conflict (switch, account, call_id, month) do nothing"
    )


def align(stage: str) -> str:
    """Calls seen before take the start of their claim, whatever its month."""
    return (
        f"update {stage} s set started_at = i.started_at from cdr_ids i"
        f" where {_SAME_CALL} and i.started_at <> s.started_at"
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


TWINS = (
    "select 1 from cdr_ids i join unnest($1::text[], $2::text[], $3::text[], $4::date[])"
    " as s(switch, account, call_id, month)"
    f" on {_SAME_CALL} and i.month = s.month limit 1"
)


async def twins_elsewhere(conn: Conn, claims: Sequence[Claim]) -> bool:
    """Whether a call of `claims` (rows as `claim` makes them) near a month's edge was
    claimed in the neighbouring month: one index probe in one partition per such call."""
    edge = [(c, m) for c in claims if (m := _neighbour(c[3])) is not None]
    if not edge:
        return False
    found = await conn.fetchval(
        TWINS,
        [c[0] for c, _ in edge],
        [c[1] for c, _ in edge],
        [c[2] for c, _ in edge],
        [m for _, m in edge],
    )
    return found is not None
