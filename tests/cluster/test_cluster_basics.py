"""The cluster the suite runs on is real, and the three operations a cluster refuses across
slots (deck publish, the per-stream wait, abuse windows in a pipeline) work on it."""

from __future__ import annotations

import asyncio
import time

from cdr.stream import CLUSTER_POLL_MS, CdrStream, poll_pause_s, wait_for_new
from core.redis_cluster import is_cluster, slot_of
from rating.deck import Deck
from runtime.services import Services
from tests.cluster.rig import Cluster
from tests.conftest import AccountFactory

PLN = 1_000_000


async def test_the_suite_runs_on_six_nodes_three_masters(
    svc: Services, redis_cluster: Cluster
) -> None:
    assert is_cluster(svc.redis)
    masters = {
        redis_cluster.master_of_slot(slot_of(svc.redis, svc.settings.keyspace.cdr_stream(t))).port
        for t in svc.settings.keyspace.tags()
    }
    assert len(redis_cluster.nodes) == 6 and len(masters) == 3  # the tags reach every master


async def test_deck_keys_share_one_slot(svc: Services, retail: Deck) -> None:
    keys = svc.settings.keyspace
    current, version = keys.deck_current("retail"), keys.deck_version("retail", retail.version)
    assert slot_of(svc.redis, current) == slot_of(svc.redis, version)
    assert await svc.redis.get(current) == str(retail.version).encode()


async def test_wait_for_new_sees_a_stream_on_any_master(svc: Services) -> None:
    keys = svc.settings.keyspace
    streams = [CdrStream(svc.redis, keys.cdr_stream(t), "g", "c") for t in keys.tags()]
    for s in streams:
        await s.ensure_group()
    assert await wait_for_new(svc.redis, streams, 10, 100) == 0  # nothing: waits, then 0
    last = streams[-1]
    waiter = asyncio.create_task(wait_for_new(svc.redis, streams, 10, 5000))
    await asyncio.sleep(0.1)
    await svc.redis.xadd(last.key, {"k": "v"})
    assert await waiter == 1
    assert len(await last.read_pending(10)) == 1  # delivered to this consumer, not lost


def _calls(cluster: Cluster, command: str) -> int:
    """How many times the cluster's nodes ran `command` (INFO commandstats)."""
    total = 0
    for node in cluster.nodes:
        for line in node.cli("info", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


async def test_quiet_streams_are_polled_slowly_and_without_key_lookups(
    svc: Services, redis_cluster: Cluster
) -> None:
    keys = svc.settings.keyspace
    streams = [CdrStream(svc.redis, keys.cdr_stream(t), "g", "c") for t in keys.tags()]
    for s in streams:
        await s.ensure_group()
        s.active_at -= 60  # nothing read for a minute
    lookups, reads = _calls(redis_cluster, "command|getkeys"), _calls(redis_cluster, "xreadgroup")
    assert await wait_for_new(svc.redis, streams, 10, 1500) == 0
    polls = (_calls(redis_cluster, "xreadgroup") - reads) / len(streams)
    assert polls <= 2, polls  # a pause of 1 s, not a poll every 50 ms (30 in 1.5 s)
    assert _calls(redis_cluster, "command|getkeys") == lookups  # keys found client-side

    # a CDR arriving after the quiet is still seen within the longest pause, and from then
    # on the streams are polled quickly again
    waiter = asyncio.create_task(wait_for_new(svc.redis, streams, 10, 5000))
    await asyncio.sleep(0.1)
    sent = time.monotonic()
    await svc.redis.xadd(streams[0].key, {"k": "v"})
    assert await waiter == 1
    assert time.monotonic() - sent < 1.5
    assert poll_pause_s(streams) == CLUSTER_POLL_MS / 1000


async def test_accounts_on_every_master_work(
    svc: Services, redis_cluster: Cluster, make_account: AccountFactory
) -> None:
    keys = svc.settings.keyspace
    by_master: dict[int, str] = {}
    n = 0
    while len(by_master) < 3:
        account = await make_account(balance=PLN, id=f"spread-{n}")
        port = redis_cluster.master_of_slot(slot_of(svc.redis, keys.account(account.id))).port
        by_master.setdefault(port, account.id)
        n += 1
    for account in by_master.values():
        live = (await svc.accounts.live(account)).as_dict()
        assert live["balance"] == PLN
