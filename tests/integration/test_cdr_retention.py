"""A call's claim is its row in the month's partition of cdrs (a unique index per partition;
cdr_ids is the view of them): one row per call whatever start a replay names, in the same
month or across a month's edge, and retention that drops a month of claims with its CDRs
(no row deleted one by one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from cdr.ids import claim_month
from cdr.partitions import drop_expired, partition_name
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_billing import cdr, store_cdrs


async def _rows(svc: Services, call_id: str) -> list[asyncpg.Record]:
    assert svc.pool is not None
    return await svc.pool.fetch(
        "select c.started_at, c.cost, c.tableoid::regclass::text as part,"
        " 'cdrs_' || to_char(i.month, 'YYYY_MM') as claim_part from cdrs c"
        " join cdr_ids i using (switch, account, call_id) where c.call_id = $1",
        call_id,
    )


async def test_a_replay_with_another_start_in_the_same_month_stays_one_row(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    first = cdr(a.id, datetime(2026, 11, 10, 12, tzinfo=UTC), 60, state="expired", cost=0,
                rated_cost=0)  # fmt: skip
    again = cdr(a.id, first.started_at + timedelta(hours=3), 60, call_id=first.call_id)
    await store_cdrs(svc.settings.pg_dsn, [first])
    await store_cdrs(svc.settings.pg_dsn, [again])
    [row] = await _rows(svc, first.call_id)
    assert (row["started_at"], row["cost"]) == (first.started_at, again.cost)
    assert row["claim_part"] == "cdrs_2026_11" and row["part"] == "cdrs_2026_11"


async def test_a_replay_across_a_month_edge_keeps_the_first_claims_month(
    svc: Services, make_account: AccountFactory
) -> None:
    """Either way across the edge: the later claim would sit in the neighbouring month's
    partition, where the primary key cannot see the first one."""
    a = await make_account()
    edge = datetime(2026, 12, 1, tzinfo=UTC)
    for first_start, second_start in (
        (edge - timedelta(seconds=30), edge + timedelta(minutes=5)),
        (edge + timedelta(seconds=10), edge - timedelta(minutes=5)),
    ):
        first = cdr(a.id, first_start, 60, state="expired", cost=0, rated_cost=0)
        again = cdr(a.id, second_start, 60, call_id=first.call_id)
        await store_cdrs(svc.settings.pg_dsn, [first])
        await store_cdrs(svc.settings.pg_dsn, [again])
        await store_cdrs(svc.settings.pg_dsn, [again])  # and a replay changes nothing
        [row] = await _rows(svc, first.call_id)
        month = datetime(first_start.year, first_start.month, 1, tzinfo=UTC)
        assert (row["started_at"], row["cost"]) == (first_start, again.cost)
        assert (row["part"], row["claim_part"]) == (partition_name(month), partition_name(month))


async def test_retention_drops_a_month_of_claims_with_its_cdrs(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    old = cdr(a.id, datetime(2002, 3, 15, 12, tzinfo=UTC), 60)
    kept = cdr(a.id, datetime(2026, 11, 15, 12, tzinfo=UTC), 60)
    await store_cdrs(svc.settings.pg_dsn, [old, kept])
    assert claim_month(old.started_at).isoformat() == "2002-03-01"
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        dropped = await drop_expired(conn, 12, datetime(2026, 12, 2, tzinfo=UTC))
        assert "cdrs_2002_03" in dropped
        parts = {
            r["relname"]
            for r in await conn.fetch(
                "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
                " where i.inhparent = 'cdrs'::regclass"
            )
        }
    assert "cdrs_2002_03" not in parts and "cdrs_2026_11" in parts
    assert await _rows(svc, old.call_id) == []
    assert len(await _rows(svc, kept.call_id)) == 1
