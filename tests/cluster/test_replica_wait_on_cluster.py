"""Money waits for the replica of the master holding the account's slot (WAIT goes to that
node, after the script, on the script's connection); the replica is frozen to time it out."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.crc import key_slot

from billing.bulk_entries import apply_in_redis
from rating.account_store import LedgerEntry
from rating.deck import Deck
from rating.durable import NotDurable
from rating.ledger import CallRequest, Outcome
from runtime.services import Services
from runtime.settings import Settings
from tests.cluster.rig import Cluster, Node
from tests.conftest import AccountFactory

PLN = 1_000_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, ledger=replace(settings.ledger, wait_replicas=1, wait_timeout_ms=1000))


def replica_of(cluster: Cluster, master: Node) -> Node:
    master_id = master.cli("cluster", "myid")
    for node in cluster.nodes:
        for line in node.cli("cluster", "nodes").splitlines():
            parts = line.split()
            if "myself" in parts[2] and "slave" in parts[2] and parts[3] == master_id:
                return node
    raise LookupError(f"no replica of {master.port}")


@contextmanager
def frozen(node: Node) -> Iterator[None]:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGSTOP)  # well within the cluster's node timeout
    try:
        yield
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


def replica_for(svc: Services, cluster: Cluster, account: str) -> Node:
    slot = key_slot(svc.ledger.keys.account(account).encode())
    return replica_of(cluster, cluster.master_of_slot(slot))


async def test_finish_waits_for_the_slots_replica(
    svc: Services, retail: Deck, make_account: AccountFactory, redis_cluster: Cluster
) -> None:
    a = await make_account(balance=PLN)
    cid = f"c-{uuid.uuid4().hex[:12]}"
    assert (await svc.ledger.authorize(CallRequest(a.id, cid, "0601234567"))).allowed
    outcome = Outcome(True, 60, datetime.now(UTC), "ANSWER", "16")
    with frozen(replica_for(svc, redis_cluster, a.id)), pytest.raises(NotDurable) as failed:
        await svc.ledger.finish(a.id, cid, outcome)
    assert failed.value.acked == 0
    again = await svc.ledger.finish(a.id, cid, outcome)
    assert (again.status, again.cost) == ("DUPLICATE", 190_000)
    assert (await svc.accounts.live(a.id)).balance == PLN - 190_000


async def test_bulk_top_ups_wait_on_every_node_they_wrote(
    svc: Services, retail: Deck, make_account: AccountFactory, redis_cluster: Cluster
) -> None:
    a = await make_account(balance=PLN)
    seq = int(await svc.redis.hget(svc.ledger.keys.account(a.id), "ledger_seq") or 0) + 1
    entry = LedgerEntry(a.id, seq, "topup", PLN, None, "", datetime.now(UTC))
    with frozen(replica_for(svc, redis_cluster, a.id)):
        assert (await apply_in_redis(svc.accounts, [entry]))[a.id].startswith("NOT_DURABLE")
    assert await apply_in_redis(svc.accounts, [entry]) == {}
    assert (await svc.accounts.live(a.id)).balance == 2 * PLN
