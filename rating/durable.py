"""Money that a replica holds: a ledger script followed by WAIT on the same connection.

Redis replicates asynchronously: a master killed before its replica received a write loses
it, and the replica that takes over never saw the money move. `WAIT numreplicas timeout`
answers how many replicas acknowledged every write made so far *on the calling
connection*, so it must follow the script on the connection (and node) that ran it. Here
both leave in one write: EVALSHA then WAIT, in one pipeline, one round trip.

When fewer replicas than asked acknowledged within the timeout the script has run on the
master all the same (WAIT does not undo anything): the operation is reported as not done
(NotDurable, a RedisError: callers retry it as they retry an unreachable Redis). Every
money script is idempotent on its call id or entry number, so the retry moves nothing
twice; its replay answer (DUPLICATE) writes an unchanged field so that its own WAIT covers
the first run's write too (replicas apply the stream in order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    RedisError,
    ResponseError,
    TryAgainError,
)

# Scripts that move money (balance, spent, the CDR of a settled call): with waiting on, they
# are reported done only once the replicas asked for hold them.
MONEY_SCRIPTS = frozenset({"finish", "expire", "apply_entry", "restore_spent"})


class NotDurable(RedisError):
    """Fewer replicas than required acknowledged a money write within the timeout.

    A RedisError: every caller already treats those as "Redis trouble, retry later, fail
    closed meanwhile" (the parking lot, the outcome log, the sweeper), which is what this
    is; a LedgerError would mean "never settles" to them."""

    code = "NOT_DURABLE"

    def __init__(self, script: str, acked: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(
            f"{self.code}: {script}: {acked} of {wanted} replica(s) acknowledged within "
            f"{timeout_ms} ms; not reported done (a retry is idempotent)"
        )
        self.acked = acked


@dataclass(frozen=True)
class Durability:
    """How many replicas must hold a money write before it counts (0: no waiting)."""

    replicas: int = 0
    timeout_ms: int = 100

    @property
    def on(self) -> bool:
        return self.replicas > 0

    def wait_args(self) -> tuple[str, int, int]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, script: str, acked: Any) -> None:
        if int(acked) < self.replicas:
            raise NotDurable(script, int(acked), self.replicas, self.timeout_ms)


async def eval_and_wait(
    redis: Redis | RedisCluster,
    script: AsyncScript,
    name: str,
    keys: list[str],
    args: list[Any],
    durability: Durability,
) -> Any:
    """Run `script` then WAIT in one pipeline on the node and connection of its keys.

    A script unknown to the node (restart, failover) is loaded and the pair sent again;
    so is the pair after a cluster redirection (the slot moved: the script did not run)."""
    for attempt in range(3):
        if isinstance(redis, RedisCluster):
            if attempt:  # a redirection: learn where the slot lives now
                await redis.nodes_manager.initialize()
            node = redis.get_node_from_key(keys[0])
            pipe: Any = redis.pipeline()
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            pipe.execute_command(*durability.wait_args(), target_nodes=node)
            replies = await pipe.execute(raise_on_error=False, allow_redirections=False)
        else:
            async with redis.pipeline(transaction=False) as plain:
                plain.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                plain.execute_command(*durability.wait_args())
                replies = await plain.execute(raise_on_error=False)
        result, acked = replies
        if isinstance(result, NoScriptError):
            await redis.script_load(script.script)
            continue
        if isinstance(result, (MovedError, AskError, TryAgainError)):
            continue
        if isinstance(result, BaseException):
            raise result
        if isinstance(acked, BaseException):
            raise acked
        durability.check(name, acked)
        return result
    raise ResponseError(f"{name}: the script's node kept changing; not run")
