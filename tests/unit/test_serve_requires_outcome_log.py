"""`tollgate serve` will not run without the outcome log: every call's outcome reaches it
through the file Asterisk's cdr_custom appends to, so running without would allow calls
and never bill them."""

from __future__ import annotations

import os
import subprocess
import sys


def test_serve_refuses_to_start_without_the_outcome_log() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_OUTCOME_")}
    env["TOLLGATE_METRICS_PORT"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TOLLGATE_OUTCOME_LOG" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_outcome_interval_is_named() -> None:
    env = {**os.environ, "TOLLGATE_OUTCOME_LOG": "/nonexistent/x.csv"}
    env |= {"TOLLGATE_OUTCOME_INTERVAL_S": "soon", "TOLLGATE_METRICS_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TOLLGATE_OUTCOME_INTERVAL_S" in done.stderr and "Traceback" not in done.stderr
