"""tests/integration/test_redis_layout.py (retag across slots) on the 6-node Redis Cluster."""

from tests.integration.test_redis_layout import *  # noqa: F403
