"""tests/integration/test_bill_batches.py, unchanged, on the 6-node Redis Cluster (see
conftest): the batch's Redis reads and the entries it applies go through cluster pipelines."""

from tests.integration.test_bill_batches import *  # noqa: F403
