"""TOLLGATE_REDIS_URL carries credentials and TLS: an ACL user and password, and rediss://
for a Redis reached over the network (how the connection is made, not a connection)."""

from __future__ import annotations

from redis.asyncio.connection import SSLConnection

from runtime.services import open_redis
from runtime.settings import Settings


def test_credentials_and_tls_come_from_the_url() -> None:
    env = {"TOLLGATE_REDIS_URL": "rediss://tollgate:s3cret@redis.internal:6380/2"}
    redis = open_redis(Settings.from_env(env))
    kwargs = redis.connection_pool.connection_kwargs
    assert redis.connection_pool.connection_class is SSLConnection
    assert (kwargs["username"], kwargs["password"]) == ("tollgate", "s3cret")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.internal", 6380, 2)


def test_a_plain_url_has_no_tls() -> None:
    redis = open_redis(Settings.from_env({"TOLLGATE_REDIS_URL": "redis://127.0.0.1:6379/0"}))
    assert redis.connection_pool.connection_class is not SSLConnection
