"""tests/integration/test_price_changes.py, unchanged, on the 6-node Redis Cluster (a deck's
schedule and versions share its hash tag; the deck cache reads them in one pipeline)."""

from tests.integration.test_price_changes import *  # noqa: F403
