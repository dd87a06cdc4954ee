"""tests/integration/test_abuse_warnings.py, unchanged, on the 6-node Redis Cluster."""

from tests.integration.test_abuse_warnings import *  # noqa: F403
