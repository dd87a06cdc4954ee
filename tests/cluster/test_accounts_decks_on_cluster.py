"""tests/integration/test_accounts_decks.py, unchanged, on the 6-node Redis Cluster."""

from tests.integration.test_accounts_decks import *  # noqa: F403
