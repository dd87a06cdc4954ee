"""The CDR writer against the real Redis and PostgreSQL: calls made through the ledger end
up as exactly one row each, whatever fails in between."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ResponseError

import cdr.store
import cdr.writer
from cdr.model import CALL_ID_AT, Cdr, Row
from cdr.partitions import (
    RetentionError,
    add_months,
    drop_expired,
    ensure_months,
    existing_months,
    month_of,
    partition_name,
)
from cdr.queries import cdr_by_id, cdrs_for
from cdr.writer import CdrStoreUnavailable, CdrWriter, WriterSettings
from rating.deck import Deck
from rating.keys import expiry_member
from rating.ledger import CallRequest, Grant, Outcome
from runtime.services import Services
from runtime.settings import SettingsError
from tests.conftest import AccountFactory, settings_env

PLN = 1_000_000
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def call_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def writer(svc: Services, dsn: str | None = None, **changes: Any) -> CdrWriter:
    changes.setdefault("consumer", "test-writer")
    return CdrWriter(
        svc.redis,
        svc.settings.keyspace,
        dsn or svc.settings.pg_dsn,
        WriterSettings(**changes),
        CollectorRegistry(),
    )


async def authorize(svc: Services, account: str, to: str, cid: str | None = None) -> Grant:
    return await svc.ledger.authorize(CallRequest(account, cid or call_id(), to, "600100200"))


async def call(svc: Services, account: str, billsec: int, to: str = "0601234567") -> str:
    g = await authorize(svc, account, to)
    assert g.allowed, g
    await svc.ledger.finish(
        account, g.call_id, Outcome(billsec > 0, billsec, datetime.now(UTC), "ANSWER", "16")
    )
    return g.call_id


async def rows(svc: Services, account: str) -> list[Cdr]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return await cdrs_for(conn, account, *EVER)


async def fetch(svc: Services, sql: str, *args: Any) -> list[asyncpg.Record]:
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        return list(await conn.fetch(sql, *args))


def stream_of(svc: Services, account: str) -> str:
    keys = svc.settings.keyspace
    return keys.cdr_stream(keys.tag(account))


async def pending(svc: Services) -> int:
    total = 0
    keys = svc.settings.keyspace
    for tag in keys.tags():
        try:
            summary = await svc.redis.xpending(keys.cdr_stream(tag), "cdr-writer")
        except ResponseError:  # no group yet on that stream: nothing delivered from it
            continue
        total += int(summary["pending"])
    return total


def sample(w: CdrWriter, name: str) -> float:
    total = 0.0
    for metric in w.metrics.registry.collect():
        for s in metric.samples:
            if s.name == name:
                total += s.value
    return total


def entry(account: str, cid: str, started: datetime, **changes: str) -> dict[Any, Any]:
    """A finished call's stream entry as the ledger writes it."""
    ms = to_ms(started)
    fields = {
        "call_id": cid,
        "account": account,
        "state": "finished",
        "decision": "ALLOW",
        "reason": "OK",
        "detail": "",
        "granted": "300",
        "reserved": "950000",
        "raw": "0601234567",
        "e164": "+48601234567",
        "class": "mobile",
        "caller": "600100200",
        "switch": "test",
        "prefix": "4860",
        "rate_name": "Poland mobile",
        "deck": "retail",
        "deck_version": "1",
        "currency": "PLN",
        "authorized_at": str(ms),
        "answered_at": str(ms + 2000),
        "ended_at": str(ms + 62000),
        "answered": "1",
        "billsec": "60",
        "rated_cost": "190000",
        "cost": "190000",
        "disposition": "ANSWER",
        "hangup_cause": "16",
        "prior_state": "open",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "<absent>"}


def to_ms(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


# -- one call, one row -----------------------------------------------------------------------


async def test_one_call_becomes_one_row_with_its_fields_and_cost(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    cid = await call(svc, a.id, 100)
    record = await svc.ledger.call(a.id, cid)
    async with writer(svc) as w:
        assert await w.drain_once() == 1
        assert await w.drain_once() == 0
    [row] = await rows(svc, a.id)
    assert (row.call_id, row.account, row.state) == (cid, a.id, "finished")
    assert (row.decision, row.reason, row.cost, row.rated_cost) == ("ALLOW", "OK", 316_700, 316_700)
    assert (row.billsec, row.answered, row.disposition, row.hangup_cause) == (
        100,
        True,
        "ANSWER",
        "16",
    )
    assert (row.raw, row.e164, row.number_class, row.caller) == (
        "0601234567",
        "+48601234567",
        "mobile",
        "600100200",
    )
    assert (row.prefix, row.rate_name, row.deck, row.deck_version, row.currency) == (
        "4860",
        "Poland mobile",
        "retail",
        retail.version,
        "PLN",
    )
    assert row.reserved == int(record["reserved"]) and row.granted_s == int(record["granted"])
    ms = int(record["authorized_at"])
    assert row.authorized_at == row.started_at == datetime.fromtimestamp(ms / 1000, UTC)
    assert row.ended_at == datetime.fromtimestamp(int(record["ended_at"]) / 1000, UTC)
    assert row.answered_at is not None and row.switch == "test" and row.written_at is not None
    assert row.stream_id and not row.emergency and not row.unauthorized
    assert row.prior_state == "open"
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        assert await cdr_by_id(conn, "test", a.id, cid) == row
    # stored and acknowledged entries do not stay in Redis
    assert await svc.redis.xlen(stream_of(svc, a.id)) == 0
    assert sample(w, "tollgate_cdrs_written_total") == 1


async def test_a_replayed_entry_and_a_duplicate_finish_leave_one_row(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    cid = await call(svc, a.id, 60)
    dup = await svc.ledger.finish(a.id, cid, Outcome(True, 300, datetime.now(UTC), "ANSWER"))
    assert dup.status == "DUPLICATE"
    # the same entry twice in the stream (as if XADD had been retried)
    stream = stream_of(svc, a.id)
    replayed = await svc.redis.xrange(stream)
    assert replayed is not None
    [(_, recorded)] = replayed
    assert recorded is not None
    fields: dict[Any, Any] = dict(recorded)
    await svc.redis.xadd(stream, fields)
    async with writer(svc) as w:
        assert await w.drain_once() == 1
        await svc.redis.xadd(stream, fields)  # and once more after it was stored
        assert await w.drain_once() == 0
    [row] = await rows(svc, a.id)
    assert (row.call_id, row.cost, row.billsec) == (cid, 190_000, 60)


async def test_denied_calls_are_recorded(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    broke = await make_account(balance=0)
    rich = await make_account(balance=PLN)
    denied = {
        (await authorize(svc, broke.id, "601234567")).call_id: "INSUFFICIENT_CREDIT",
        (await authorize(svc, rich.id, "701234567")).call_id: "PREMIUM_BLOCKED",
    }
    async with writer(svc) as w:
        assert await w.drain_once() == 2
    got = {r.call_id: r for r in await rows(svc, broke.id) + await rows(svc, rich.id)}
    assert {cid: r.reason for cid, r in got.items()} == denied
    for r in got.values():
        assert (r.state, r.decision, r.cost, r.billsec, r.disposition) == (
            "denied",
            "DENY",
            0,
            0,
            "DENIED",
        )


async def test_expired_then_finished_is_one_row_finished_with_its_cost(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    g = await authorize(svc, a.id, "601234567")
    await expire_now(svc, a.id, g.call_id)
    async with writer(svc) as w:
        assert await w.drain_once() == 1
        [row] = await rows(svc, a.id)
        assert (row.state, row.cost) == ("expired", 0)
        s = await svc.ledger.finish(a.id, g.call_id, Outcome(True, 60, datetime.now(UTC)))
        assert s.cost == 190_000
        assert await w.drain_once() == 1
        [row] = await rows(svc, a.id)
        assert (row.state, row.cost, row.prior_state, row.billsec) == (
            "finished",
            190_000,
            "expired",
            60,
        )
        # an older record arriving late (a replay of the expiry) never replaces it
        stream = stream_of(svc, a.id)
        await svc.redis.xadd(stream, {**row_fields(row), "state": "expired", "cost": "0"})
        assert await w.drain_once() == 0
    [row] = await rows(svc, a.id)
    assert (row.state, row.cost) == ("finished", 190_000)


async def test_expired_and_finished_in_one_batch(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    g = await authorize(svc, a.id, "601234567")
    await expire_now(svc, a.id, g.call_id)
    await svc.ledger.finish(a.id, g.call_id, Outcome(True, 30, datetime.now(UTC)))
    async with writer(svc) as w:
        assert await w.drain_once() == 1
    [row] = await rows(svc, a.id)
    assert (row.state, row.cost) == ("finished", 95_000)


async def expire_now(svc: Services, account: str, cid: str) -> None:
    """Make the call's reservation due and let the sweeper release it (no waiting)."""
    keys = svc.settings.keyspace
    member = expiry_member(account, svc.ledger.switch_of(), cid)
    await svc.redis.zadd(keys.expiry(keys.tag(account)), {member: 0})
    assert await svc.ledger.sweep() == 1
    assert (await svc.ledger.call(account, cid))["state"] == "expired"


def row_fields(row: Cdr) -> dict[Any, Any]:
    ms = to_ms(row.started_at)
    return entry(
        row.account,
        row.call_id,
        row.started_at,
        ended_at=str(ms + 1000),
        answered_at="",
        billsec="0",
    )


async def test_entries_another_group_still_needs_are_not_trimmed(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    stream = stream_of(svc, a.id)
    await svc.redis.xgroup_create(stream, "audit", id="0", mkstream=True)
    await call(svc, a.id, 10)
    await call(svc, a.id, 20)
    async with writer(svc) as w:
        assert await w.drain_once() == 2
        assert await svc.redis.xlen(stream) == 2  # stored, acknowledged, but not by "audit"
        oldest = await svc.redis.xrange(stream, count=1)
        assert oldest is not None
        [(first_id, _)] = oldest
        assert first_id is not None
        await svc.redis.xreadgroup("audit", "a1", {stream: ">"}, count=1)
        await svc.redis.xack(stream, "audit", first_id)
        await call(svc, a.id, 30)
        assert await w.drain_once() == 1
        assert await svc.redis.xlen(stream) == 2  # "audit" has read only the first one
    assert len(await rows(svc, a.id)) == 3


# -- bad entries -----------------------------------------------------------------------------


async def test_a_malformed_entry_is_kept_aside_and_does_not_block_the_stream(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    before = await call(svc, a.id, 10)
    stream = stream_of(svc, a.id)
    now = datetime.now(UTC)
    bad: list[dict[Any, Any]] = [
        entry(a.id, call_id(), now, state="open"),
        entry(a.id, call_id(), now, cost="-5"),
        entry(a.id, call_id(), now, call_id="<absent>"),
        entry(a.id, call_id(), now, ended_at="yesterday"),
        entry(a.id, call_id(), now, caller="nul\x00byte"),
        {**entry(a.id, call_id(), now), "caller": b"\xff\xfe not utf-8"},
        entry(a.id, call_id(), now - timedelta(days=800)),  # beyond retention
    ]
    bad_ids = [await svc.redis.xadd(stream, fields) for fields in bad]
    after = await call(svc, a.id, 20)
    async with writer(svc) as w:
        assert await w.drain_once() == 2
        assert sample(w, "tollgate_cdr_rejects_total") == len(bad)
    assert {r.call_id for r in await rows(svc, a.id)} == {before, after}
    rejects = await fetch(svc, "select * from cdr_rejects where stream = $1", stream)
    assert sorted(r["stream_id"] for r in rejects) == sorted(
        i.decode() if isinstance(i, bytes) else i for i in bad_ids
    )
    errors = {r["error"].split(":")[0] for r in rejects}
    assert {"state", "cost", "call_id", "ended_at", "caller"} <= errors
    assert any("retention" in r["error"] for r in rejects)
    assert await pending(svc) == 0 and await svc.redis.xlen(stream) == 0


@pytest.mark.parametrize("same_stream", [True, False])
async def test_a_call_id_of_two_accounts_or_two_switches_is_two_calls(
    svc: Services, same_stream: bool
) -> None:
    """A call is its switch, its account and the switch's call id: the same id elsewhere is
    another call with its own row, never a reject (its debit would have no record)."""
    keys = svc.settings.keyspace
    first = "acct-x"
    second = next(
        name
        for name in (f"acct-{n}" for n in range(100))
        if name != first and (keys.tag(name) == keys.tag(first)) == same_stream
    )
    now = datetime.now(UTC)
    cid = call_id()
    for account, switch in ((first, "test"), (second, "test"), (first, "pbx-b")):
        await svc.redis.xadd(stream_of(svc, account), entry(account, cid, now, switch=switch))
    async with writer(svc) as w:
        assert await w.drain_once() == 3
    found = await fetch(svc, "select switch, account from cdrs where call_id = $1", cid)
    assert sorted((r["switch"], r["account"]) for r in found) == sorted(
        [("test", first), ("test", second), ("pbx-b", first)]
    )
    assert await fetch(svc, "select * from cdr_rejects") == []
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        one = await cdr_by_id(conn, "pbx-b", first, cid)
    assert one is not None and (one.switch, one.account) == ("pbx-b", first)


async def test_a_row_postgres_refuses_is_kept_aside_and_the_rest_stored(
    svc: Services, retail: Deck, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await make_account(balance=10 * PLN)
    cids = [await call(svc, a.id, n) for n in (5, 6, 7)]
    poison = cids[1]
    real_write = cdr.store.write_rows

    async def refuse_poison(conn: Any, stream: str, rows: list[Row], *rest: Any) -> Any:
        if any(r[CALL_ID_AT] == poison for r in rows):
            raise asyncpg.CheckViolationError("new row violates a check constraint")
        return await real_write(conn, stream, rows, *rest)

    monkeypatch.setattr(cdr.writer, "write_rows", refuse_poison)
    async with writer(svc) as w:
        assert await w.drain_once() == 2
    assert sorted(r.call_id for r in await rows(svc, a.id)) == sorted(set(cids) - {poison})
    [reject] = await fetch(svc, "select * from cdr_rejects")
    assert reject["call_id"] == poison and "refused by PostgreSQL" in reject["error"]
    assert json.loads(reject["fields"])["call_id"] == poison
    assert await pending(svc) == 0


async def test_a_broken_stream_key_does_not_hold_up_the_other_streams(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=PLN)
    keys = svc.settings.keyspace
    broken = next(
        keys.cdr_stream(t) for t in keys.tags() if keys.cdr_stream(t) != stream_of(svc, a.id)
    )
    await svc.redis.set(broken, "not a stream")
    cid = await call(svc, a.id, 10)
    async with writer(svc) as w:
        assert await w.drain_once() == 1
        assert sample(w, "tollgate_cdr_write_errors_total") == 1
        assert sample(w, "tollgate_cdr_streams_skipped") == 1
    assert [r.call_id for r in await rows(svc, a.id)] == [cid]


async def test_cdr_writer_once_fails_naming_the_streams_it_skipped(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    """`tollgate cdr-writer --once` (cron, scripts) must not report success while CDRs were
    left behind: exit non-zero, each skipped stream named with why."""
    import subprocess
    import sys

    a = await make_account(balance=PLN)
    keys = svc.settings.keyspace
    broken = sorted(t for t in keys.tags() if keys.cdr_stream(t) != stream_of(svc, a.id))[:2]
    for tag in broken:
        await svc.redis.set(keys.cdr_stream(tag), "not a stream")
    cid = await call(svc, a.id, 10)
    env = {**os.environ, **settings_env(svc.settings)}

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tollgate.cli", "cdr-writer", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = await asyncio.to_thread(once)
    assert out.returncode == 1, out
    report = json.loads(out.stdout)
    assert report["written"] == 1
    assert sorted(report["skipped"]) == sorted(keys.cdr_stream(t) for t in broken)
    last = out.stderr.strip().splitlines()[-1]
    assert f"2 of {keys.shards} CDR streams skipped" in last
    assert all(keys.cdr_stream(t) in last for t in broken) and "WRONGTYPE" in last
    assert [r.call_id for r in await rows(svc, a.id)] == [cid]
    for tag in broken:  # repaired: the same command succeeds
        await svc.redis.delete(keys.cdr_stream(tag))
    out = await asyncio.to_thread(once)
    assert out.returncode == 0, out
    assert json.loads(out.stdout) == {"written": 0, "skipped": {}}


# -- crashes and outages ---------------------------------------------------------------------


class Killed(Exception):
    """Stands for the writer process dying at that point."""


async def test_killed_mid_batch_then_restarted_writes_exactly_once(
    svc: Services, retail: Deck, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await make_account(balance=10 * PLN)
    cids = {await call(svc, a.id, n) for n in (5, 6, 7, 8, 9)}
    real_copy = asyncpg.Connection.copy_to_table

    async def copy_then_die(self: asyncpg.Connection[Any], *args: Any, **kw: Any) -> str:
        await real_copy(self, *args, **kw)
        raise Killed

    monkeypatch.setattr(asyncpg.Connection, "copy_to_table", copy_then_die)
    # small batches: the next one is being read while the first is stored
    w = writer(svc, consumer="dies", batch_size=2)
    with pytest.raises(Killed):
        await w.drain_once()
    await w.close()
    monkeypatch.undo()
    assert await rows(svc, a.id) == [] and await pending(svc) >= 2
    # the same consumer restarted: re-reads its own pending entries, then the rest
    async with writer(svc, consumer="dies", batch_size=2) as again:
        assert await again.drain_once() == 5
    assert sorted(r.call_id for r in await rows(svc, a.id)) == sorted(cids)
    assert await pending(svc) == 0


async def test_a_dead_writers_entries_are_claimed_by_another(
    svc: Services, retail: Deck, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await make_account(balance=10 * PLN)
    cids = {await call(svc, a.id, n) for n in (5, 6)}

    async def die(acks: Any) -> None:
        raise Killed

    # killed after the commit, before the acknowledgement
    monkeypatch.setattr(cdr.writer, "ack_many", die)
    with pytest.raises(Killed):
        await writer(svc, consumer="dead").drain_once()
    monkeypatch.undo()
    assert len(await rows(svc, a.id)) == 2 and await pending(svc) == 2
    # a writer with another name (a restart gets a new pid) claims them: nothing new to write
    async with writer(svc, consumer="other", claim_idle_ms=0) as other:
        assert await other.drain_once() == 0
    assert sorted(r.call_id for r in await rows(svc, a.id)) == sorted(cids)
    assert await pending(svc) == 0


async def test_postgres_unreachable_keeps_entries_pending_then_exactly_once(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    cids = {await call(svc, a.id, n) for n in (5, 6, 7)}
    async with writer(svc, dsn=dsn_with_port(svc.settings.pg_dsn, closed_port())) as down:
        for _ in range(2):
            with pytest.raises(CdrStoreUnavailable):
                await down.drain_once()
        assert await pending(svc) == 3
        assert sample(down, "tollgate_cdr_stream_backlog") == 3
        assert sample(down, "tollgate_cdr_write_errors_total") == 2
    assert await rows(svc, a.id) == []
    async with writer(svc) as back:
        assert await back.drain_once() == 3
        assert await back.drain_once() == 0
        assert sample(back, "tollgate_cdr_stream_backlog") == 0
    assert sorted(r.call_id for r in await rows(svc, a.id)) == sorted(cids)


async def test_run_waits_out_a_postgres_outage(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    pg = urlsplit(svc.settings.pg_dsn)
    async with tcp_proxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
        w = writer(
            svc,
            dsn=dsn_with_port(svc.settings.pg_dsn, proxy.port),
            block_ms=50,
            backoff_min_s=0.01,
            backoff_max_s=0.05,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(w.run(stop))
        try:
            first = await call(svc, a.id, 5)
            await eventually(lambda: has_rows(svc, a.id, 1), "the first CDR is stored")
            await proxy.cut()  # PostgreSQL goes away
            later = {await call(svc, a.id, n) for n in (6, 7)}
            await eventually(lambda: errors_at_least(w, 3), "the writer retries during the outage")
            assert len(await rows(svc, a.id)) == 1
            await proxy.restore()
            await eventually(lambda: has_rows(svc, a.id, 3), "the CDRs arrive after the outage")
            await eventually(lambda: no_pending(svc), "everything acknowledged")
        finally:
            stop.set()
            await task
            await w.close()
    assert sorted(r.call_id for r in await rows(svc, a.id)) == sorted({first, *later})


async def has_rows(svc: Services, account: str, n: int) -> bool:
    return len(await rows(svc, account)) >= n


async def errors_at_least(w: CdrWriter, n: int) -> bool:
    return sample(w, "tollgate_cdr_write_errors_total") >= n


async def no_pending(svc: Services) -> bool:
    return await pending(svc) == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def dsn_with_port(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"{parts.hostname}:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut (connections dropped, new ones
    refused) and restored on the same port: an outage without touching the shared server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for link in list(self.links):
            link.transport.abort()
        self.links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links -= {writer, up_writer}


@asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(host, port)
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.cut()


# -- partitions and metrics ------------------------------------------------------------------


async def test_a_call_starting_in_the_last_second_of_a_month_lands_in_that_month(
    svc: Services, make_account: AccountFactory
) -> None:
    this_month = month_of(datetime.now(UTC))
    last_second = this_month - timedelta(seconds=1)  # 23:59:59 on the last day, UTC
    cases = {
        call_id(): (last_second, add_months(this_month, -1)),
        call_id(): (last_second + timedelta(milliseconds=999), add_months(this_month, -1)),
        call_id(): (this_month, this_month),
    }
    stream = stream_of(svc, "acct-edge")
    for cid, (started, _) in cases.items():
        await svc.redis.xadd(stream, entry("acct-edge", cid, started))
    # a call that never reached authorize: its start is ended_at - billsec
    unauthorized = call_id()
    cases[unauthorized] = (last_second, add_months(this_month, -1))
    await svc.redis.xadd(
        stream,
        entry(
            "acct-edge",
            unauthorized,
            last_second,
            authorized_at="<absent>",
            ended_at=str(to_ms(last_second + timedelta(seconds=60))),
            unauthorized="1",
        ),
    )
    async with writer(svc) as w:
        assert await w.drain_once() == 4
    got = await fetch(svc, "select call_id, started_at, tableoid::regclass::text as part from cdrs")
    where = {r["call_id"]: (r["started_at"], r["part"]) for r in got if r["call_id"] in cases}
    assert where == {
        cid: (started, partition_name(month)) for cid, (started, month) in cases.items()
    }


async def test_partitions_are_made_ahead_and_dropped_only_past_retention(svc: Services) -> None:
    assert svc.pool is not None
    now = datetime.now(UTC)
    async with writer(svc) as w:
        await w.drain_once()
    async with svc.pool.acquire() as conn:
        months = await existing_months(conn)
        assert {add_months(month_of(now), n) for n in range(3)} <= months
        old = datetime(2001, 1, 1, tzinfo=UTC)
        await ensure_months(conn, [old])
        for too_short in (0, 11):
            with pytest.raises(RetentionError):
                await drop_expired(conn, too_short)
        dropped = await drop_expired(conn, 12)
        assert partition_name(old) in dropped
        left = await existing_months(conn)
        assert old not in left
        assert {add_months(month_of(now), n) for n in range(-12, 3)} & months <= left


async def test_backlog_metric_counts_entries_not_yet_stored(
    svc: Services, retail: Deck, make_account: AccountFactory
) -> None:
    a = await make_account(balance=10 * PLN)
    for n in (1, 2, 3):
        await call(svc, a.id, n)
    async with writer(svc) as w:
        await w.refresh_metrics()
        assert sample(w, "tollgate_cdr_stream_backlog") == 3
        assert sample(w, "tollgate_cdr_oldest_pending_seconds") >= 0
        assert await w.drain_once() == 3
        assert sample(w, "tollgate_cdr_stream_backlog") == 0
        assert sample(w, "tollgate_cdr_oldest_pending_seconds") == 0


def test_writer_settings_from_env() -> None:
    s = WriterSettings.from_env({"TOLLGATE_CDR_BATCH_SIZE": "50", "TOLLGATE_CDR_CONSUMER": "w1"})
    assert (s.group, s.consumer, s.batch_size, s.block_ms, s.claim_idle_ms) == (
        "cdr-writer",
        "w1",
        50,
        1000,
        30_000,
    )
    assert WriterSettings.from_env({}).consumer.endswith(f"-{os.getpid()}")
    with pytest.raises(SettingsError):
        WriterSettings.from_env({"TOLLGATE_CDR_RETENTION_MONTHS": "6"})
    with pytest.raises(SettingsError):
        WriterSettings.from_env({"TOLLGATE_CDR_BLOCK_MS": "soon"})


async def test_a_call_recorded_again_with_another_start_stays_one_row_where_it_was_first(
    svc: Services, make_account: AccountFactory
) -> None:
    # cdrs has no foreign key to cdr_ids: the writer alone keeps a call in one partition
    this_month = month_of(datetime.now(UTC))
    first_start = this_month - timedelta(days=2)  # last month
    cid = call_id()
    stream = stream_of(svc, "acct-two-starts")
    expired = entry(
        "acct-two-starts",
        cid,
        first_start,
        state="expired",
        cost="0",
        authorized_at="<absent>",
        answered_at="",
        answered="0",
        billsec="0",
    )
    await svc.redis.xadd(stream, expired)
    async with writer(svc) as w:
        assert await w.drain_once() == 1  # a new call: copied straight into cdrs
        # the finish names another start (a later authorized_at, this month)
        later = entry("acct-two-starts", cid, this_month + timedelta(hours=1), cost="190000")
        await svc.redis.xadd(stream, later)
        assert await w.drain_once() == 1
        await svc.redis.xadd(stream, later)  # and a replay changes nothing
        assert await w.drain_once() == 0
    got = await fetch(
        svc,
        "select state, cost, started_at, tableoid::regclass::text as part from cdrs"
        " where call_id = $1",
        cid,
    )
    ended = datetime.fromtimestamp(int(expired["ended_at"]) / 1000, UTC)
    assert [(r["state"], r["cost"], r["started_at"], r["part"]) for r in got] == [
        ("finished", 190_000, ended, partition_name(add_months(this_month, -1)))
    ]
    [claim] = await fetch(svc, "select started_at from cdr_ids where call_id = $1", cid)
    assert claim["started_at"] == ended
