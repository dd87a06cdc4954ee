"""Real calls through Asterisk with `tollgate serve` on a 6-node Redis Cluster.

The session's rig (Asterisk, the SIPp carrier, PostgreSQL) stays; for these tests the
session's tollgate makes way for one started with TOLLGATE_REDIS_MODE=cluster on the same
FastAGI port, and is started again afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from rating.deck import load_deck
from rating.deck_store import import_deck, publish
from rating.keys import Keyspace
from runtime.services import services
from runtime.settings import Settings
from tests.cluster.rig import Cluster, running_cluster
from tests.conftest import RETAIL, _truncate, drop_prefix, settings_env
from tests.e2e import test_fastagi
from tests.e2e.conftest import E2E, TollgateProcess, _recreate_groups
from tests.e2e.rig import AsteriskRig, RigConfig, SippCarrier


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
async def e2e_cluster(
    e2e_settings: Settings,
    asterisk: AsteriskRig,
    carrier: SippCarrier,
    tollgate: TollgateProcess,
    rig_config: RigConfig,
    redis_cluster: Cluster,
) -> AsyncIterator[E2E]:
    settings = replace(
        e2e_settings,
        redis_url=redis_cluster.url,
        redis_mode="cluster",
        keyspace=Keyspace(f"tge2c{uuid.uuid4().hex[:8]}", 16),
    )
    tollgate.stop()
    asterisk.discard_outcomes()
    await _truncate(settings.pg_dsn)
    log = tollgate.log.with_name("serve-cluster.log")
    own = TollgateProcess({**tollgate.env, **settings_env(settings)}, rig_config.agi_port, log)
    try:
        async with services(settings) as svc:
            await _recreate_groups(svc, settings.keyspace)
            assert svc.pool is not None
            async with svc.pool.acquire() as conn:
                deck, _ = await import_deck(conn, load_deck(RETAIL), "e2e")
            await publish(svc.redis, settings.keyspace, deck)
            own.start()
            yield E2E(svc, asterisk, carrier, own, rig_config, len(carrier.calls()))
            await drop_prefix(svc.redis, settings.keyspace.prefix)
    finally:
        own.stop()
        asterisk.discard_outcomes()
        tollgate.start()


async def test_a_call_is_granted_cut_and_billed_on_a_cluster(e2e_cluster: E2E) -> None:
    await test_fastagi.test_allowed_call_is_cut_by_asterisk_at_the_granted_time(e2e_cluster)


async def test_refusals_keep_their_codes_on_a_cluster(e2e_cluster: E2E) -> None:
    await test_fastagi.test_refusals_get_their_sip_code_and_never_reach_the_carrier(e2e_cluster)
