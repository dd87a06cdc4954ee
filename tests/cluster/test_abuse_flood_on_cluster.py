"""tests/integration/test_abuse_flood.py, unchanged, on the 6-node Redis Cluster (see conftest)."""

from tests.integration.test_abuse_flood import *  # noqa: F403
