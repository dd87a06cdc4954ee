"""The CDR writer's text rows converted by PostgreSQL (cdr/store.py): what ends up in
`cdrs` is exactly `Cdr.from_stream` of the entry, for awkward values too (COPY's special
characters, leading zeros, the largest numbers, absent times, microseconds), by the fast
path and by the merge path."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from cdr.model import Cdr
from cdr.queries import cdrs_for
from cdr.store import prepare, write_batch
from cdr.writer import CdrWriter, WriterSettings
from runtime.services import Services
from tests.conftest import AccountFactory
from tests.integration.test_cdr_writer import EVER, call_id, entry, stream_of

AWKWARD: list[dict[str, str]] = [
    {"caller": "tab\there", "detail": "back\\slash", "rate_name": "line\nfeed\r\n"},
    {"detail": "\\N", "raw": "\\.", "rdnis": "zażółć 🙂"},
    {"billsec": "0007", "granted": "2147483647", "cost": str(2**63 - 1), "answered": ""},
    {"answered_at": "", "emergency": "1", "unauthorized": "0", "direction": "in"},
    {"authorized_at": "", "billsec": "61", "direction": "sideways"},
]


def stored(cdr: Cdr) -> Cdr:
    return dataclasses.replace(cdr, written_at=None)


async def test_awkward_entries_are_stored_as_from_stream_reads_them(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    stream = stream_of(svc, a.id)
    now = datetime.now(UTC).replace(microsecond=0)
    expected: dict[str, Cdr] = {}
    for changes in AWKWARD:
        fields = entry(a.id, call_id(), now - timedelta(minutes=5), **changes)
        entry_id = await svc.redis.xadd(stream, fields)
        expected[fields["call_id"]] = Cdr.from_stream(fields, entry_id.decode())
    writer = CdrWriter(
        svc.redis,
        svc.settings.keyspace,
        svc.settings.pg_dsn,
        WriterSettings(consumer="text-copy"),
        CollectorRegistry(),
    )
    async with writer:
        assert await writer.drain_once() == len(AWKWARD)
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        got = {c.call_id: stored(c) for c in await cdrs_for(conn, a.id, *EVER)}
    assert got == expected


async def test_python_values_keep_their_microseconds_by_both_paths(
    svc: Services, make_account: AccountFactory
) -> None:
    a = await make_account()
    at = datetime.now(UTC).replace(microsecond=123457) - timedelta(hours=1)
    cdrs = [
        Cdr(call_id(), at, a.id, "expired", at + timedelta(seconds=3), detail="a\tb"),
        Cdr(call_id(), at, a.id, "finished", at, billsec=0, answered_at=None, cost=5),
    ]
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        await prepare(conn)
        assert (await write_batch(conn, "test", cdrs)).written == 2  # new calls: fast path
        final = dataclasses.replace(cdrs[0], state="finished", cost=7)
        assert (await write_batch(conn, "test", [final, cdrs[1]])).written == 1  # merge
        got: list[Any] = [stored(c) for c in await cdrs_for(conn, a.id, *EVER)]
    assert sorted(got, key=lambda c: c.call_id) == sorted([final, cdrs[1]], key=lambda c: c.call_id)
