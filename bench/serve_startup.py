"""How long `tollgate serve` takes to listen for FastAGI with no deck stored, and with a large
deck stored (Redis holding its compiled copy, and Redis having lost it), and how long the
first call's deck load takes (the compiled form, and the earlier form for comparison).
Start-up should not grow with the deck's size: the ratio is the large deck's time to listen
over the empty one's, measured in the same run.

Works in a throwaway database and Redis key prefix (`bench/harness.py`), removed afterwards.

    .venv/bin/python bench/serve_startup.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from bench.deck_import import write_deck
from bench.harness import scratch
from rating.deck import deck_from_json
from rating.deck_store import fetch_from_redis
from rating.keys import Keyspace


def time_to_listen(env: dict[str, str]) -> float:
    """Start `tollgate serve`, wait for its "FastAGI on" line, stop it."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tollgate.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "FastAGI on" in line:
                return time.perf_counter() - start
        raise SystemExit(f"tollgate serve exited ({proc.wait()}) without listening")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # its shutdown is not what is measured
            proc.wait()


async def first_load(redis: Redis, keys: Keyspace, name: str) -> tuple[float, float]:
    """The first call's deck load as serve's cache does it (GET + parse, one lookup), for
    the compiled form and for the earlier form (a dict per row) of the same deck."""
    start = time.perf_counter()
    deck = await fetch_from_redis(redis, keys, name, 1)
    assert deck is not None and deck.lookup("100001") is not None
    compiled = time.perf_counter() - start
    earlier = json.dumps(
        {
            **deck.manifest(),
            "version": 1,
            "sha256": deck.sha256,
            "rows": [r.as_dict() for r in deck.rows],
        },
        separators=(",", ":"),
    )
    await redis.set(f"{keys.prefix}:earlier", earlier)
    start = time.perf_counter()
    raw = await redis.get(f"{keys.prefix}:earlier")
    assert raw is not None and deck_from_json(raw).lookup("100001") is not None
    return compiled, time.perf_counter() - start


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    empty: list[float] = []
    stored: list[float] = []
    lost: list[float] = []
    async with scratch("serve") as run:
        keys = Keyspace(run.prefix, 16)
        env = {
            **run.env,
            "TOLLGATE_AGI_HOST": "127.0.0.1",
            "TOLLGATE_AGI_PORT": "0",
            "TOLLGATE_METRICS_PORT": "0",
            "TOLLGATE_CDR_WRITER": "0",
            "TOLLGATE_ABUSE": "0",
        }
        with tempfile.TemporaryDirectory() as tmp:
            # no Asterisk writes it: the tail finds no file yet, serve runs
            env["TOLLGATE_OUTCOME_LOG"] = os.path.join(tmp, "tollgate-outcomes.csv")
            run.tollgate("db", "upgrade")
            for _ in range(args.repeat):
                empty.append(time_to_listen(env))
            run.tollgate("deck", "import", str(write_deck(Path(tmp), args.rows)))
            for _ in range(args.repeat):
                stored.append(time_to_listen(env))
                await run.redis.delete(keys.deck_current("big"), keys.deck_version("big", 1))
                lost.append(time_to_listen(env))
            compiled, earlier = await first_load(run.redis, keys, "big")
    e, s, lo = (statistics.median(x) for x in (empty, stored, lost))
    print(f"serve listens, no deck stored         : {e:8.2f} s  (median of {args.repeat})")
    print(f"serve listens, {args.rows} rows, in Redis : {s:8.2f} s")
    print(f"serve listens, {args.rows} rows, Redis lost it: {lo:8.2f} s")
    print(
        f"first call's deck load, compiled form : {compiled:8.3f} s  (earlier form {earlier:.3f} s)"
    )
    print(f"ratio large deck / no deck            : {s / e:8.2f}  (Redis lost it: {lo / e:.2f})")


if __name__ == "__main__":
    asyncio.run(main())
