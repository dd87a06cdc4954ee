"""tests/integration/test_abuse.py, unchanged, on the 6-node Redis Cluster (see conftest)."""

from tests.integration.test_abuse import *  # noqa: F403
