"""`tollgate serve` will not run without the AMI collector: every call's outcome reaches it
through AstDB and AMI, so running without would allow calls and never bill them."""

from __future__ import annotations

import os
import subprocess
import sys


def test_serve_refuses_to_start_without_ami() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_AMI_")}
    env["TOLLGATE_METRICS_PORT"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TOLLGATE_AMI_HOST" in done.stderr and "Traceback" not in done.stderr
