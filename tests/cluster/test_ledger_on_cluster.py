"""tests/integration/test_ledger.py, unchanged, on the 6-node Redis Cluster (see conftest)."""

from tests.integration.test_ledger import *  # noqa: F403
