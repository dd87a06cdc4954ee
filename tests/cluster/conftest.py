"""The suite's fixtures, pointed at a real 6-node Redis Cluster started for this session.

Test modules here re-run integration tests unchanged (they import them): the same ledger,
CDR writer and abuse tests must pass on a cluster as on one Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.settings import Settings
from tests.cluster.rig import Cluster, on_cluster, running_cluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def settings(settings: Settings, redis_cluster: Cluster) -> Settings:
    return on_cluster(settings, redis_cluster, "tgc")
