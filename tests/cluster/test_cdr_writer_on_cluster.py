"""tests/integration/test_cdr_writer.py, unchanged, on the 6-node Redis Cluster (see conftest)."""

from tests.integration.test_cdr_writer import *  # noqa: F403
