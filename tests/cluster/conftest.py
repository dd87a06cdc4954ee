"""The suite's fixtures, pointed at a real 6-node Redis Cluster started for this session.

Test modules here re-run integration tests unchanged (they import them): the same ledger,
CDR writer and abuse tests must pass on a cluster as on one Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from rating.keys import Keyspace
from runtime.settings import Settings
from tests.cluster.rig import Cluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def settings(settings: Settings, redis_cluster: Cluster) -> Settings:
    # 64 tags: enough that every master holds several, few enough to keep rounds short
    return replace(
        settings,
        redis_url=redis_cluster.url,
        redis_mode="cluster",
        keyspace=Keyspace(f"tgc{uuid.uuid4().hex[:10]}", 64),
    )
