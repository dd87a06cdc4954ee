"""The outcome log tail (switch/outcome_log.py) against real files, the real Redis and the
real PostgreSQL: partial lines, restart from the stored offset, rotation, a Redis outage,
lines no ledger accepts, and the sweeper's evidence."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from rating.deck import Deck
from rating.ledger import CallRequest, Ledger
from runtime.services import Services
from switch.outcome_log import OutcomeLog, OutcomeLogError, OutcomeLogSettings
from tests.conftest import AccountFactory
from tests.e2e.proxy import CuttableProxy

PLN = 1_000_000
MOBILE = "601234567"  # 0.19 PLN/min, per second


def line(call_id: str, account: str, talk_ms: int = 60_000, status: str = "ANSWER") -> bytes:
    end = f"{time.time():.3f}"
    return f"{call_id}|{account}|{status}|{talk_ms}|16|+48{MOBILE}|0|{end}\n".encode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:  # as cdr_custom does: open, append, close per record
        f.write(data)


async def authorized(ledger: Ledger, account: str) -> str:
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await ledger.authorize(CallRequest(account, cid, MOBILE, cap_s=120))).allowed
    return cid


def tail(svc: Services, path: Path, ledger: Ledger | None = None) -> OutcomeLog:
    assert svc.pool is not None
    settings = OutcomeLogSettings(path=str(path), rotate_grace_s=0.2)
    return OutcomeLog(settings, ledger or svc.ledger, svc.pool)


async def stored(svc: Services, path: Path) -> tuple[int, int] | None:
    assert svc.pool is not None
    row = await svc.pool.fetchrow(
        "select inode, byte_offset from outcome_log_offsets where log = $1", str(path)
    )
    return None if row is None else (row[0], row[1])


async def test_complete_lines_are_settled_once_and_a_partial_line_waits(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    one, two = await authorized(svc.ledger, a.id), await authorized(svc.ledger, a.id)
    full = line(two, a.id)
    append(log, b"\n" + line(one, a.id) + full[:20])  # an empty line (another leg's CDR)
    outcomes = tail(svc, log)
    scan = await outcomes.collect()
    assert (scan.seen, scan.settled, scan.failed, scan.lag_bytes) == (1, 1, 0, 20)
    assert await stored(svc, log) == (log.stat().st_ino, log.stat().st_size - 20)
    assert (await svc.ledger.call(a.id, one))["state"] == "finished"
    assert (await svc.ledger.call(a.id, two))["state"] != "finished"  # not consumed yet
    append(log, full[20:])
    scan = await outcomes.collect()
    assert (scan.seen, scan.settled, scan.lag_bytes) == (1, 1, 0)
    live = await svc.accounts.live(a.id)
    costs = [int((await svc.ledger.call(a.id, c))["cost"]) for c in (one, two)]
    assert costs[0] > 0 and live.reserved == 0 and live.balance == 10 * PLN - sum(costs)
    # nothing new: a round reads nothing and moves no money
    assert (await outcomes.collect()).seen == 0
    assert (await svc.accounts.live(a.id)).balance == live.balance


async def test_a_restart_reads_on_from_the_stored_offset(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    first = await authorized(svc.ledger, a.id)
    append(log, line(first, a.id))
    assert (await tail(svc, log).collect()).settled == 1
    balance = (await svc.accounts.live(a.id)).balance
    second = await authorized(svc.ledger, a.id)
    append(log, line(second, a.id, talk_ms=30_000))
    again = tail(svc, log)  # a new process: only the stored offset tells where it was
    scan = await again.collect()
    assert (scan.seen, scan.settled) == (1, 1)
    cost = int((await svc.ledger.call(a.id, second))["cost"])
    assert (await svc.accounts.live(a.id)).balance == balance - cost


async def test_rotation_finishes_the_old_file_then_reads_the_new_one(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    calls = [await authorized(svc.ledger, a.id) for _ in range(4)]
    append(log, line(calls[0], a.id))
    outcomes = tail(svc, log)
    assert (await outcomes.collect()).settled == 1
    old = log.with_name(log.name + ".1")
    log.rename(old)
    append(old, line(calls[1], a.id))  # a record written just as the file was renamed
    scan = await outcomes.collect()  # nothing at the path yet: the old file is read on
    assert scan.settled == 1 and outcomes.clear_since is not None
    append(log, line(calls[2], a.id))  # Asterisk's next record creates a new file
    append(log, line(calls[3], a.id))
    scan = await outcomes.collect()
    assert scan.settled == 2
    assert await stored(svc, log) == (log.stat().st_ino, log.stat().st_size)
    for cid in calls:
        assert (await svc.ledger.call(a.id, cid))["state"] == "finished"
    # tollgate was down during the next rotation: the stored inode is found among path.*
    fifth = await authorized(svc.ledger, a.id)
    append(log, line(fifth, a.id))
    log.rename(log.with_name(log.name + ".2"))
    sixth = await authorized(svc.ledger, a.id)
    append(log, line(sixth, a.id))
    scan = await tail(svc, log).collect()
    assert scan.settled == 2
    for cid in (fifth, sixth):
        assert (await svc.ledger.call(a.id, cid))["state"] == "finished"
    live = await svc.accounts.live(a.id)
    costs = [int((await svc.ledger.call(a.id, c))["cost"]) for c in [*calls, fifth, sixth]]
    assert live.reserved == 0 and live.balance == 10 * PLN - sum(costs)


async def test_redis_down_stops_the_tail_without_advancing_and_then_settles_once(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    calls = [await authorized(svc.ledger, a.id) for _ in range(3)]
    host, port = "127.0.0.1", int(svc.settings.redis_url.split(":")[-1].split("/")[0])
    proxy = CuttableProxy(port, host).start()
    redis = Redis(
        host=host,
        port=proxy.port,
        db=int(svc.settings.redis_url.rsplit("/", 1)[-1] or 0),
        socket_timeout=2,
    )
    ledger = Ledger(redis, svc.settings.keyspace, svc.ledger.decks, svc.ledger.settings)
    try:
        outcomes = tail(svc, log, ledger)
        append(log, line(calls[0], a.id))
        assert (await outcomes.collect()).settled == 1
        settled_to = await stored(svc, log)
        proxy.cut()
        append(log, b"".join(line(c, a.id) for c in calls[1:]))
        started = time.time()
        scan = await outcomes.collect()
        assert scan.failed == 1 and scan.settled == 0
        assert await stored(svc, log) == settled_to  # retried from there, not skipped
        assert outcomes.clear_since is not None and outcomes.clear_since < started
        proxy.restore()
        scan = await outcomes.collect()
        assert (scan.failed, scan.settled) == (0, 2)
        assert outcomes.clear_since is not None and outcomes.clear_since >= started
    finally:
        proxy.stop()
        await redis.aclose()
    live = await svc.accounts.live(a.id)
    costs = [int((await svc.ledger.call(a.id, c))["cost"]) for c in calls]
    assert all(c > 0 for c in costs)
    assert live.reserved == 0 and live.balance == 10 * PLN - sum(costs)


async def test_a_malformed_line_is_set_aside_without_blocking_the_tail(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    good = await authorized(svc.ledger, a.id)
    bad = b"not|an|outcome\n"
    append(log, bad + b"bad id!|" + line(good, a.id)[len(good) + 1 :] + line(good, a.id))
    scan = await tail(svc, log).collect()
    assert (scan.rejected, scan.settled, scan.failed) == (2, 1, 0)
    assert (await svc.ledger.call(a.id, good))["state"] == "finished"
    assert svc.pool is not None
    rows = await svc.pool.fetch(
        "select byte_offset, line, error from outcome_log_rejects where log = $1"
        " order by byte_offset",
        str(log),
    )
    assert [r["byte_offset"] for r in rows] == [0, len(bad)]
    assert rows[0]["line"] == "not|an|outcome" and rows[0]["error"].startswith("MALFORMED")
    assert rows[1]["error"].startswith("BAD_CALL_ID")


async def test_an_unreadable_log_is_an_error_and_nothing_is_consumed(
    svc: Services, retail: Deck, tmp_path: Path
) -> None:
    log = tmp_path / "outcomes-dir"
    log.mkdir()  # a directory where the file should be: reading it fails
    outcomes = tail(svc, log)
    with pytest.raises(OutcomeLogError, match="outcomes-dir"):
        await outcomes.collect()
    assert outcomes.clear_since is None


async def test_a_new_file_that_reuses_the_inode_number_is_read_from_its_start(
    svc: Services, retail: Deck, make_account: AccountFactory, tmp_path: Path
) -> None:
    """Filesystems reuse a deleted file's inode number: the stored first line tells the
    files apart, so the new file is not read from the old one's offset."""
    a = await make_account(balance=10 * PLN)
    log = tmp_path / "tollgate-outcomes.csv"
    old = await authorized(svc.ledger, a.id)
    append(log, b"\n" + line(old, a.id))  # an empty first line: the first non-empty counts
    assert (await tail(svc, log).collect()).settled == 1
    log.unlink()
    calls = [await authorized(svc.ledger, a.id) for _ in range(2)]
    append(log, b"\n" + b"".join(line(c, a.id, talk_ms=1000) for c in calls))
    assert svc.pool is not None
    # as if the new file had got the old one's inode number (offset within the new file)
    await svc.pool.execute(
        "update outcome_log_offsets set inode = $1, byte_offset = 10 where log = $2",
        log.stat().st_ino,
        str(log),
    )
    scan = await tail(svc, log).collect()
    assert (scan.settled, scan.failed) == (2, 0)
    for cid in calls:
        assert (await svc.ledger.call(a.id, cid))["state"] == "finished"
