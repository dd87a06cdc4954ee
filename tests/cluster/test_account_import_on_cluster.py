"""tests/integration/test_account_import.py on the 6-node Redis Cluster."""

from tests.integration.test_account_import import *  # noqa: F403
