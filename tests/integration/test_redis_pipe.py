"""The pipelined Redis connection of the authorize path (core.redis_pipe) against the real
Redis: replies reach the command that asked even when hundreds are in flight, errors and
lost connections fail only what they must and never shift a reply onto another command,
and what it cannot speak (a cluster's redirections) hands the ledger back to redis-py."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from core.redis_pipe import CommandPipe, PipeConnectionError, Unusable
from rating.accounts import Account
from rating.ledger import CallRequest, Decision, Ledger, Outcome
from runtime.services import Services
from tests.conftest import TEST_REDIS, AccountFactory
from tests.e2e.rig import free_tcp_port


@pytest.fixture
async def pipe() -> AsyncIterator[CommandPipe]:
    made = CommandPipe.from_url(TEST_REDIS)
    assert made is not None
    yield made
    await made.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS)
    yield client
    await client.aclose()


def test_only_plain_tcp_urls_get_a_pipe() -> None:
    assert CommandPipe.from_url("rediss://h:6380/0") is None  # TLS: redis-py's
    assert CommandPipe.from_url("unix:///run/redis.sock") is None
    assert CommandPipe.from_url("redis://h:6379/0?ssl_cert_reqs=none") is None
    made = CommandPipe.from_url("redis://tollgate:p%40ss@redis:6390/3")
    assert made is not None
    assert (made.host, made.port, made.username, made.password, made.db) == (
        "redis",
        6390,
        "tollgate",
        "p@ss",
        3,
    )


async def test_every_command_gets_its_own_reply(pipe: CommandPipe, redis: Redis) -> None:
    prefix = f"tgpipe{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.gather(*(pipe.execute("SET", f"{prefix}:{n}", f"v{n}") for n in range(500)))
        got = await asyncio.gather(*(pipe.execute("GET", f"{prefix}:{n}") for n in range(500)))
        assert got == [f"v{n}".encode() for n in range(500)]
    finally:
        await redis.delete(*(f"{prefix}:{n}" for n in range(500)))


async def test_an_error_reply_fails_its_command_only(pipe: CommandPipe) -> None:
    results = await asyncio.gather(
        pipe.execute("PING"),
        pipe.execute("NO-SUCH-COMMAND"),
        pipe.execute("ECHO", "after"),
        return_exceptions=True,
    )
    assert results[0] == b"PONG"
    assert isinstance(results[1], ResponseError)
    assert results[2] == b"after"


async def test_an_unknown_script_is_loaded_and_run(pipe: CommandPipe, redis: Redis) -> None:
    source = f"return {{ARGV[1], '{uuid.uuid4().hex}'}}"  # never seen by this Redis
    sha = hashlib.sha1(source.encode()).hexdigest()
    assert await redis.script_exists(sha) == [False]
    reply = await pipe.evalsha(sha, source, [], ["hello"])
    assert reply[0] == b"hello"
    assert await redis.script_exists(sha) == [True]


async def test_a_killed_connection_fails_what_was_pending_and_is_replaced(
    pipe: CommandPipe, redis: Redis
) -> None:
    name = f"tgpipe{uuid.uuid4().hex[:8]}"
    await pipe.execute("CLIENT", "SETNAME", name)
    # a command that waits in Redis until the connection is killed under it
    pending = asyncio.create_task(pipe.execute("BLPOP", f"{name}:never", 30))
    while True:
        mine = [c for c in await redis.client_list() if c["name"] == name]
        if mine and mine[0]["cmd"] == "blpop":
            break
        await asyncio.sleep(0.05)
    await redis.execute_command("CLIENT", "KILL", "ID", mine[0]["id"])
    with pytest.raises(PipeConnectionError) as lost:
        await pending
    # an outage by both definitions: the FastAGI adapter's (builtin) and redis-py's
    assert isinstance(lost.value, ConnectionError)
    assert isinstance(lost.value, RedisConnectionError)
    assert await pipe.execute("ECHO", "again") == b"again"  # a new connection


async def test_a_silent_connection_is_dropped_even_when_callers_give_up_first(
    redis: Redis,
) -> None:
    """Authorizations give up after the FastAGI budget (0.5 s), before the pipe's own reply
    timeout: a connection that answers nothing must still be replaced, or every later
    command would wait behind the silent one."""
    slow = CommandPipe.from_url(TEST_REDIS, reply_timeout_s=0.5)
    assert slow is not None
    try:
        assert await slow.execute("PING") == b"PONG"  # connected
        stuck = asyncio.create_task(slow.execute("BLPOP", f"tgpipe{uuid.uuid4().hex}:never", 30))
        await asyncio.sleep(0)  # queued first: every later command waits behind it
        with pytest.raises(TimeoutError):  # the caller's own, shorter deadline
            async with asyncio.timeout(0.1):
                await slow.execute("PING")
        with pytest.raises(PipeConnectionError, match="no reply within"):
            await stuck  # the pipe's watchdog dropped the connection under it
        assert await slow.execute("PING") == b"PONG"  # and the next command gets a new one
    finally:
        await slow.close()


async def test_an_unreachable_redis_is_a_connection_error() -> None:
    gone = CommandPipe("127.0.0.1", free_tcp_port())
    with pytest.raises(ConnectionError, match="cannot connect to Redis"):
        await gone.execute("PING")


async def test_acl_user_and_database_from_the_url(redis: Redis) -> None:
    user, secret = f"tgpipe{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.execute_command("ACL", "SETUSER", user, "on", f">{secret}", f"~{user}:*", "+@all")
    try:
        good = CommandPipe.from_url(f"redis://{user}:{secret}@127.0.0.1:{_port()}/1")
        assert good is not None
        try:
            await good.execute("SET", f"{user}:k", "v")
            assert await good.execute("GET", f"{user}:k") == b"v"
            await good.execute("DEL", f"{user}:k")
        finally:
            await good.close()
        bad = CommandPipe.from_url(f"redis://{user}:wrong@127.0.0.1:{_port()}/0")
        assert bad is not None
        with pytest.raises(PipeConnectionError, match="refused AUTH"):
            await bad.execute("PING")
    finally:
        await redis.execute_command("ACL", "DELUSER", user)


def _port() -> int:
    pipe = CommandPipe.from_url(TEST_REDIS)
    assert pipe is not None
    return pipe.port


async def test_a_cluster_redirection_hands_the_ledger_back_to_redis_py(
    svc: Services, make_account: AccountFactory
) -> None:
    """A node that answers MOVED (a cluster): the pipe says so, the ledger authorizes this
    call and every later one through redis-py, and nothing is granted twice."""

    async def moved(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            writer.write(b"-MOVED 1234 127.0.0.1:7000\r\n")
        writer.close()

    server = await asyncio.start_server(moved, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account: Account = await make_account(balance=10**9)
    ledger = Ledger(
        svc.redis, svc.settings.keyspace, svc.ledger.decks, svc.settings.ledger,
        pipe=CommandPipe("127.0.0.1", port),
    )  # fmt: skip
    try:
        with pytest.raises(Unusable):
            assert ledger.pipe is not None
            await ledger.pipe.evalsha("0" * 40, "return 1", [], [])
        first = await ledger.authorize(CallRequest(account.id, "1764628800.1", "601234567"))
        assert first.decision is Decision.ALLOW and ledger.pipe is None
        again = await ledger.authorize(CallRequest(account.id, "1764628800.1", "601234567"))
        assert again.decision is Decision.ALLOW and again.max_seconds == first.max_seconds
        assert len(await ledger.open_calls(account.id)) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_finish_through_the_pipe_settles_once(
    svc: Services, make_account: AccountFactory
) -> None:
    """The outcome log settles over the pipelined connection: the same script, the same
    exactly-once answer to a replayed outcome."""
    account: Account = await make_account(balance=10**9)
    pipe = CommandPipe.from_url(TEST_REDIS)
    assert pipe is not None
    ledger = Ledger(
        svc.redis, svc.settings.keyspace, svc.ledger.decks, svc.settings.ledger, pipe=pipe
    )
    try:
        call_id = "1764628800.7"
        grant = await ledger.authorize(CallRequest(account.id, call_id, "601234567"))
        assert grant.decision is Decision.ALLOW
        assert (await ledger.call(account.id, call_id))["state"] == "open"
        ended = datetime(2025, 12, 1, 12, 0, 30, tzinfo=UTC)
        outcome = Outcome(True, 30, ended, "ANSWER", "16", ended - timedelta(seconds=30))
        first = await ledger.finish(account.id, call_id, outcome)
        again = await ledger.finish(account.id, call_id, outcome)
        assert first.cost > 0 and first.status != "DUPLICATE"
        assert again.status == "DUPLICATE" and again.cost == first.cost
        assert (await ledger.call(account.id, call_id))["state"] == "finished"
        assert await ledger.open_calls(account.id) == {}
    finally:
        await pipe.close()
