"""Money waits for a real replica (TOLLGATE_REDIS_WAIT_REPLICAS): a master and a replica of
its own, each a redis-server on a free port; the replica is frozen (SIGSTOP) to make WAIT
time out, as a replica that has not received a write would after a master's kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from rating.deck import Deck
from rating.durable import NotDurable
from rating.ledger import CallRequest, Outcome
from runtime.services import Services
from runtime.settings import Settings
from switch.ami import AmiSettings
from switch.parking import ParkingLot
from tests.conftest import AccountFactory, settings_on

PLN = 1_000_000
TIMEOUT_MS = 1000  # generous: a loaded machine must not fail the acknowledged cases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), *extra],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Pair:
    master_port: int
    replica_port: int
    replica: subprocess.Popen[bytes]

    @property
    def master_url(self) -> str:
        return f"redis://127.0.0.1:{self.master_port}/0"

    @contextmanager
    def replica_frozen(self) -> Iterator[None]:
        os.kill(self.replica.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replica.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with tempfile.TemporaryDirectory() as tmp:
        mport, rport = free_port(), free_port()
        (Path(tmp) / "m").mkdir()
        (Path(tmp) / "r").mkdir()
        master = redis_server(mport, Path(tmp) / "m")
        replica = redis_server(rport, Path(tmp) / "r", "--replicaof", "127.0.0.1", str(mport))
        try:
            deadline = time.monotonic() + 20
            while True:
                out = subprocess.run(
                    ["redis-cli", "-p", str(rport), "info", "replication"],
                    capture_output=True, text=True, check=False,
                ).stdout  # fmt: skip
                if "master_link_status:up" in out:
                    break
                assert time.monotonic() < deadline, "the replica never synced"
                time.sleep(0.1)
            yield Pair(mport, rport, replica)
        finally:
            for proc in (replica, master):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)


@pytest.fixture(params=[True, False], ids=["pipelined", "redis-py"])
def settings(migrated: str, pair: Pair, request: pytest.FixtureRequest) -> Settings:
    """The test services on the pair's master, money waiting for its one replica, over the
    pipelined connection (a second one for money) or redis-py's pipelines."""
    base = settings_on(migrated, "tgw")
    ledger = replace(base.ledger, wait_replicas=1, wait_timeout_ms=TIMEOUT_MS)
    return replace(base, redis_url=pair.master_url, ledger=ledger, redis_pipeline=request.param)


@pytest.fixture
async def replica(pair: Pair) -> AsyncIterator[Redis]:
    client = Redis(port=pair.replica_port)
    yield client
    await client.aclose()


def ended(billsec: int) -> Outcome:
    return Outcome(True, billsec, datetime.now(UTC), "ANSWER", "16")


async def test_finish_is_done_once_the_replica_holds_it(
    svc: Services, retail: Deck, make_account: AccountFactory, replica: Redis
) -> None:
    assert (svc.ledger.money_pipe is not None) == svc.settings.redis_pipeline
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    done = await svc.ledger.finish(a.id, cid, ended(60))
    assert (done.status, done.cost) == ("FINISHED", 190_000)
    # read at once from the replica: WAIT returned, so it has the debit and the record
    key = svc.ledger.keys.account(a.id)
    assert int(await replica.hget(key, "balance") or 0) == PLN - 190_000
    record = svc.ledger.keys.call(a.id, cid, "test")
    assert await replica.hget(record, "state") == b"finished"


async def test_finish_unacknowledged_is_not_done_and_its_retry_charges_once(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair, replica: Redis
) -> None:
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    with pair.replica_frozen(), pytest.raises(NotDurable) as failed:
        await svc.ledger.finish(a.id, cid, ended(60))
    assert failed.value.acked == 0
    retried = await svc.ledger.finish(a.id, cid, ended(60))
    assert (retried.status, retried.cost) == ("DUPLICATE", 190_000)
    live = await svc.accounts.live(a.id)
    assert (live.balance, live.reserved) == (PLN - 190_000, 0)
    assert int(await replica.hget(svc.ledger.keys.account(a.id), "balance") or 0) == live.balance


async def test_a_retry_on_a_new_connection_still_waits_for_the_first_run(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair
) -> None:
    """WAIT counts what its own connection wrote: the replay writes an unchanged field, so a
    retry on another connection is not acknowledged before the first run's write is."""
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    with pair.replica_frozen():
        with pytest.raises(NotDurable):
            await svc.ledger.finish(a.id, cid, ended(60))
        if svc.ledger.money_pipe is not None:
            await svc.ledger.money_pipe.close()
        await svc.redis.connection_pool.disconnect()
        with pytest.raises(NotDurable):
            await svc.ledger.finish(a.id, cid, ended(60))


async def test_a_top_up_waits_for_the_replica(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair
) -> None:
    a = await make_account(balance=PLN)
    key = svc.ledger.keys.account(a.id)
    seq = int(await svc.redis.hget(key, "ledger_seq") or 0) + 1
    with pair.replica_frozen(), pytest.raises(NotDurable):
        await svc.ledger.money("apply_entry", [key], [seq, 5 * PLN, "topup"])
    again = await svc.ledger.money("apply_entry", [key], [seq, 5 * PLN, "topup"])
    assert again[0] == b"DUPLICATE"
    assert (await svc.accounts.live(a.id)).balance == 6 * PLN


async def test_a_bulk_top_up_unacknowledged_is_reported_failed(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair
) -> None:
    from billing.bulk_entries import apply_in_redis
    from rating.account_store import LedgerEntry

    a = await make_account(balance=PLN)
    seq = int(await svc.redis.hget(svc.ledger.keys.account(a.id), "ledger_seq") or 0) + 1
    entry = LedgerEntry(a.id, seq, "topup", PLN, None, "", datetime.now(UTC))
    with pair.replica_frozen():
        failed = await apply_in_redis(svc.accounts, [entry])
    assert failed[a.id].startswith("NOT_DURABLE")
    assert await apply_in_redis(svc.accounts, [entry]) == {}
    assert (await svc.accounts.live(a.id)).balance == 2 * PLN


async def test_without_the_setting_nothing_waits(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair
) -> None:
    svc.ledger.durability = replace(svc.ledger.durability, replicas=0)
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    with pair.replica_frozen():
        assert (await svc.ledger.finish(a.id, cid, ended(60))).status == "FINISHED"


async def test_a_parked_outcome_unacknowledged_is_kept_for_retry(
    svc: Services, retail: Deck, make_account: AccountFactory, pair: Pair
) -> None:
    """NOT_DURABLE is Redis trouble to the switch's collectors: retried, never set aside."""
    lot = ParkingLot(AmiSettings(), svc.ledger)
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    parked = f"{a.id}|ANSWER|60000|16|0601234567||{int(time.time())}"
    with pair.replica_frozen():
        assert await lot._settle(cid, parked) == "retry"
    assert await lot._settle(cid, parked) == "settled"
    assert (await svc.accounts.live(a.id)).balance == PLN - 190_000


async def test_a_master_that_forgot_the_script_gets_it_again(
    svc: Services, retail: Deck, make_account: AccountFactory, replica: Redis
) -> None:
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    await svc.redis.script_flush()  # as after a restart or a failover to a fresh node
    assert (await svc.ledger.finish(a.id, cid, ended(60))).status == "FINISHED"
    assert await replica.hget(svc.ledger.keys.call(a.id, cid, "test"), "state") == b"finished"
