"""Redis Cluster: opening a client, and the few places where a cluster needs other commands.

A cluster refuses any command whose keys lie in different hash slots (even slots of one
node), and redis-py's cluster client is a class of its own. Everything else tollgate sends
(one Lua script per call, keys hash-tagged by account) runs unchanged, so the engine keeps
one client type and asks `is_cluster` only where the command must differ."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ResponseError

FAST_RETRIES = 6


def cluster_from_url(url: str, **kwargs: Any) -> Redis:
    """A cluster client discovering every node from the one the URL names.

    Typed as `Redis`: it offers the same command methods, so the code above keeps one client
    type; what differs is behind `is_cluster`."""
    # A slot without a master fails its own commands; the other slots keep working (the
    # servers must run with cluster-require-full-coverage no for the same reason).
    kwargs.setdefault("require_full_coverage", False)
    # redis-py's default (10 retries backing off to 1 s) hides a master's failover in a
    # several-second stall: the switch's 2 s budget runs out, and a grant reserved after it
    # holds credit for a call that was refused. A few quick retries still follow MOVED
    # redirects and topology changes, then the error reaches the caller (a refusal).
    kwargs.setdefault(
        "retry",
        Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=FAST_RETRIES),
    )
    client = _Cluster.from_url(url, **kwargs)
    client.commands_parser = CommandTableOnce()
    return cast(Redis, client)


class _Cluster(RedisCluster):
    """Retries one more kind of failure: a topology refresh marks every connection for
    reconnection, and a command racing it finds its connection's writer gone (redis-py
    raises AttributeError on None.writelines): seen on healthy masters while another failed
    over. Every tollgate command is safe to repeat (scripts are idempotent per call)."""

    ERRORS_ALLOW_RETRY = (*RedisCluster.ERRORS_ALLOW_RETRY, AttributeError)  # type: ignore[assignment]


class CommandTableOnce(AsyncCommandsParser):
    """redis-py re-reads the whole command table (COMMAND, ~100 kB) at every topology
    refresh, under the lock every command waits for; during a master's failover each failed
    command asks for a refresh, and calls on healthy masters queued behind them for
    seconds. The table does not change with the topology: read it once, follow the node."""

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if node is not None:
            self.node = node
        if not self.commands:
            await super().initialize()

    async def get_keys(self, *args: Any) -> tuple[str, ...] | None:
        # XREADGROUP's keys move (they follow STREAMS): redis-py asks a server (COMMAND
        # GETKEYS, a round trip per read) where a look at the words is enough. An idle
        # CDR reader polls hundreds of streams a second: that doubled its commands.
        if keys := stream_read_keys(args):
            return keys
        return await super().get_keys(*args)


def stream_read_keys(args: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The keys of an XREADGROUP or XREAD (the first half of what follows STREAMS), or None
    for another command (or a malformed one: the server's answer then says what is wrong)."""
    if not args:
        return None
    name = _word(args[0]).upper()
    # XREADGROUP GROUP g c ...: a group or consumer may be called STREAMS
    start = {"XREADGROUP": 4, "XREAD": 1}.get(name)
    if start is None:
        return None
    for at in range(start, len(args)):
        if _word(args[at]).upper() == "STREAMS":
            rest = args[at + 1 :]
            if not rest or len(rest) % 2:
                return None
            return tuple(rest[: len(rest) // 2])
    return None


def _word(arg: Any) -> str:
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def slot_of(redis: Redis, key: str) -> int:
    """The hash slot of a key (cluster clients only)."""
    return int(cast(RedisCluster, redis).keyslot(key))


class ClusterFunction:
    """A Lua script (written for EVAL: KEYS, ARGV) loaded as a Redis function, for cluster
    pipelines. EVALSHA in a pipeline depends on every master's script cache, which a
    promoted replica does not have; functions are replicated and persisted with the data,
    so a failover keeps them. The library is named by the script's hash: processes of two
    versions running side by side each call their own."""

    def __init__(self, name: str, script: str) -> None:
        digest = hashlib.sha1(script.encode()).hexdigest()[:12]
        self.library = f"tg_{name}_{digest}"
        self.name = f"{self.library}_run"
        self.code = (
            f"#!lua name={self.library}\n"
            f"local function run(KEYS, ARGV)\n{script}\nend\n"
            f"redis.register_function('{self.name}', run)\n"
        )
        self._loaded = False

    async def load(self, redis: Redis, *, again: bool = False) -> None:
        """Load on every master (once; `again` after a node answered it does not know it)."""
        if self._loaded and not again:
            return
        await redis.function_load(self.code, replace=True)
        self._loaded = True

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        pipe.fcall(self.name, len(keys), *keys, *args)


def is_missing_function(exc: BaseException) -> bool:
    return "Function not found" in str(exc)


class PipelinedScript:
    """One Lua script run for many keys in pipelines, on one Redis or on a cluster: EVALSHA
    in a plain pipeline (redis-py loads the script first), a function (FCALL) in a cluster
    pipeline (see ClusterFunction). Every call must be safe to run twice: a batch that met a
    node without the function is run again after loading it."""

    def __init__(self, redis: Redis, name: str, script: str) -> None:
        self.redis = redis
        self.script = redis.register_script(script)
        self.function = ClusterFunction(name, script) if is_cluster(redis) else None

    async def run(
        self, calls: list[tuple[list[str], list[Any]]], wait: tuple[Any, ...] = ()
    ) -> tuple[list[Any], list[Any]]:
        """The calls' replies, and the replies of `wait` (a WAIT command) sent after them on
        each connection they used (one per node), so that it covers their writes."""
        if self.function is None:
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                await self.script(keys=keys, args=args, client=pipe)
            if wait:
                pipe.execute_command(*wait)
            replies = list(await pipe.execute())
            return replies[: len(calls)], replies[len(calls) :]
        try:
            return await self._fcall(self.function, calls, wait)
        except ResponseError as exc:
            if not is_missing_function(exc):
                raise
        await self.function.load(self.redis, again=True)
        return await self._fcall(self.function, calls, wait)

    async def _fcall(
        self,
        function: ClusterFunction,
        calls: list[tuple[list[str], list[Any]]],
        wait: tuple[Any, ...],
    ) -> tuple[list[Any], list[Any]]:
        await function.load(self.redis)
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in calls:
            function.queue(pipe, keys, args)
        cluster = cast(RedisCluster, self.redis)
        nodes = {n.name: n for n in (cluster.get_node_from_key(k[0]) for k, _ in calls) if n}
        for node in nodes.values() if wait else ():
            pipe.execute_command(*wait, target_nodes=node)
        replies = list(await pipe.execute())
        return replies[: len(calls)], replies[len(calls) :]
