"""kill -9 a master of a real Redis Cluster under authorize+finish load.

The master killed is the one holding the deck's keys. Calls of accounts on the other masters
go on untouched; calls of accounts on the killed one
fail (the switch refuses them: fail-closed) until its replica takes over, then work again.
Afterwards every call allowed is settled exactly once: one CDR, one debit, no reservation
left, and each account's balance is its opening balance minus its CDRs' costs.

The cluster is this module's own (the session's stays whole for the other tests)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from core.redis_cluster import slot_of
from rating.ledger import CallRequest, Outcome
from runtime.services import Services
from runtime.settings import Settings
from tests.cluster.rig import Cluster, on_cluster, running_cluster, wait_until
from tests.conftest import AccountFactory

# In the suite since the rig runs its nodes with cluster-require-full-coverage no (as the
# README tells production to): with the default, the failed master stopped every master's
# slots for a moment, and redis-py answered CLUSTERDOWN by closing every connection, which
# reached healthy masters' calls as errors. TOLLGATE_TEST_FAILOVER=0 leaves it out (~35 s).
pytestmark = pytest.mark.skipif(
    os.environ.get("TOLLGATE_TEST_FAILOVER") == "0",
    reason="master failover under load: left out with TOLLGATE_TEST_FAILOVER=0",
)

PLN = 1_000_000
WORKERS_PER_ACCOUNT = 2
ACCOUNTS_PER_MASTER = 3
SETTLE_WITHIN_S = 90.0  # a finish retried longer than this means the failover never happened


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def settings(settings: Settings, own_cluster: Cluster) -> Settings:
    return on_cluster(settings, own_cluster, "tgf")


@dataclass
class Tally:
    allowed: set[tuple[str, str]] = field(default_factory=set)  # (account, call id)
    settled: set[tuple[str, str]] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)  # by account
    kinds: Counter[str] = field(default_factory=Counter)  # errors by what they said
    denied: Counter[str] = field(default_factory=Counter)  # by reason
    calls: list[tuple[str, float, float]] = field(default_factory=list)  # account, start, s
    first_error: dict[str, float] = field(default_factory=dict)
    last_error: dict[str, float] = field(default_factory=dict)

    def error(self, account: str) -> None:
        now = time.monotonic()
        self.errors[account] += 1
        self.first_error.setdefault(account, now)
        self.last_error[account] = now


async def _caller(svc: Services, account: str, tally: Tally, stop: asyncio.Event) -> None:
    """A switch's calls for one account, one after another: authorize, then finish; a finish
    that fails is retried until it is settled, as the switch's parking lot does."""
    while not stop.is_set():
        cid = f"f-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        try:
            grant = await svc.ledger.authorize(CallRequest(account, cid, "0601234567"))
        except Exception as exc:  # what the switch adapter turns into a refusal
            tally.error(account)
            tally.kinds[f"authorize {type(exc).__name__}: {exc}"[:150]] += 1
            await asyncio.sleep(0.05)
            continue
        if grant.decision.value != "ALLOW":
            tally.denied[grant.reason] += 1
            await asyncio.sleep(0.05)
            continue
        tally.allowed.add((account, cid))
        outcome = Outcome(True, 7, datetime.now(UTC), "ANSWER", "16")
        give_up = time.monotonic() + SETTLE_WITHIN_S
        while time.monotonic() < give_up:
            try:
                await svc.ledger.finish(account, cid, outcome)
                break
            except Exception as exc:
                tally.error(account)
                tally.kinds[f"finish {type(exc).__name__}: {exc}"[:150]] += 1
                await asyncio.sleep(0.05)
        else:  # the cluster never came back: the exactly-once check below names the call
            return
        tally.settled.add((account, cid))
        tally.calls.append((account, started, time.monotonic() - started))


async def test_kill_a_master_under_load(
    svc: Services, own_cluster: Cluster, make_account: AccountFactory
) -> None:
    keys = svc.settings.keyspace
    by_master: dict[int, list[str]] = defaultdict(list)
    n = 0
    while len(by_master) < 3 or min(map(len, by_master.values())) < ACCOUNTS_PER_MASTER:
        account = await make_account(balance=1000 * PLN, id=f"fo-{n}")
        port = own_cluster.master_of_slot(slot_of(svc.redis, keys.account(account.id))).port
        by_master[port].append(account.id)
        n += 1
    # the deck's master: its pointer must not take the other masters' calls down with it
    victim_port = own_cluster.master_of_slot(slot_of(svc.redis, keys.deck_current("retail"))).port
    victim = next(node for node in own_cluster.nodes if node.port == victim_port)
    doomed = set(by_master[victim_port])
    healthy = {a for port, accounts in by_master.items() if port != victim_port for a in accounts}

    tally, stop = Tally(), asyncio.Event()
    callers = [
        asyncio.create_task(_caller(svc, account, tally, stop))
        for account in doomed | healthy
        for _ in range(WORKERS_PER_ACCOUNT)
    ]
    warm_until = time.monotonic() + 60
    while {a for a, _ in tally.settled} != doomed | healthy:
        assert time.monotonic() < warm_until, f"calls before the kill did not settle: {tally.kinds}"
        await asyncio.sleep(0.1)
    # the victim's replica holds what the master acknowledged so far (else it could not
    # take over, and money acknowledged before the kill would be lost with the master)
    wait_until(own_cluster.replicas_synced, what="replicas synced before the kill")
    await asyncio.sleep(1.0)
    before_kill = len(tally.settled)
    killed_at = time.monotonic()
    victim.kill()
    # load goes on until the doomed accounts have worked again for a while
    deadline = killed_at + 60
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        last = max((tally.last_error.get(a, 0.0) for a in doomed), default=0.0)
        if last and time.monotonic() - last > 2.0:
            break
    stop.set()
    await asyncio.gather(*callers)
    refused_s = max(tally.last_error[a] for a in doomed if a in tally.last_error) - killed_at
    after = [(a, d) for a, t, d in tally.calls if t >= killed_at and a in healthy]
    print(
        f"\nfailover: {len(tally.settled)} calls settled ({before_kill} before the kill);"
        f" doomed master's accounts failed for {refused_s:.1f} s,"
        f" {sum(tally.errors[a] for a in doomed)} errors; healthy masters' accounts"
        f" {sum(tally.errors[a] for a in healthy)} errors, {len(after)} calls after the kill,"
        f" slowest {max((d for _, d in after), default=0.0):.2f} s"
    )

    # other masters: not one error
    assert all(tally.errors[a] == 0 for a in healthy), (dict(tally.errors), tally.kinds)
    # the killed master's accounts: refused for a while, then calls went through again
    assert all(tally.errors[a] > 0 for a in doomed)
    assert all(any(acc == a for acc, _ in tally.settled) for a in doomed)
    assert tally.settled == tally.allowed  # every call allowed was settled (retried)

    wait_until(own_cluster.healthy, what="cluster state ok again")
    await _assert_exactly_once(svc, tally, doomed | healthy)


async def _assert_exactly_once(svc: Services, tally: Tally, accounts: set[str]) -> None:
    keys = svc.settings.keyspace
    cdrs: Counter[tuple[str, str]] = Counter()
    cost: Counter[str] = Counter()
    for tag in keys.tags():
        for _, raw in await svc.redis.xrange(keys.cdr_stream(tag)):
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            cdrs[(fields["account"], fields["call_id"])] += 1
            cost[fields["account"]] += int(fields["cost"])
    assert set(cdrs) == tally.settled  # nothing lost, nothing from nowhere
    assert max(cdrs.values()) == 1  # nothing doubled
    for account in accounts:
        live = (await svc.accounts.live(account)).as_dict()
        assert live["reserved"] == 0 and live["open_calls"] == 0, (account, live)
        assert live["balance"] == 1000 * PLN - cost[account], (account, live)
