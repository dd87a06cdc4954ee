"""tests/integration/test_concurrency.py, unchanged, on the 6-node Redis Cluster (see conftest)."""

from tests.integration.test_concurrency import *  # noqa: F403
