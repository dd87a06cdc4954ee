"""Start-up time of the `tollgate` command: `--help` and simple sub-commands, against
`python -c pass` with the same interpreter in the same run (the floor no command can go
under) and against the 0.3 s limit. Each command runs --runs times; the median is shown.

    .venv/bin/python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

LIMIT_S = 0.3
ROOT = Path(__file__).resolve().parent.parent
TOLLGATE = [sys.executable, "-c", "from tollgate.cli import main; main()"]
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tollgate --help": [*TOLLGATE, "--help"],
    "tollgate classify": [*TOLLGATE, "classify", "0601234567"],
    "tollgate rate": [
        *TOLLGATE,
        "rate",
        "--deck",
        str(ROOT / "examples/decks/retail/deck.toml"),
        "--to",
        "0601234567",
        "--at",
        "2026-11-20T12:00",
        "--seconds",
        "95",
    ],
    "tollgate deck --help": [*TOLLGATE, "deck", "--help"],
}


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):  # interleaved: a busy moment hits every command alike
        for name, argv in COMMANDS.items():
            times[name].append(once(argv))
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<22} {'median s':>9} {'vs python -c pass':>18} {'vs limit 0.3 s':>15}")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name:<22} {m:9.3f} {m / floor:17.1f}x {m / LIMIT_S:15.2f}")


if __name__ == "__main__":
    main()
