"""pyVoIP phones as subprocesses (tests/e2e/pyvoip_phone.py) for the e2e tests: a thread
collects each phone's JSON events from its stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PHONE_SCRIPT = Path(__file__).resolve().parent / "pyvoip_phone.py"


class PhoneProcess:
    """pyvoip_phone.py in a subprocess; a thread collects its JSON events from stdout."""

    def __init__(self, mode: str, workdir: Path, *args: str) -> None:
        self.mode = mode
        self.stderr_path = workdir / f"{mode}.stderr"
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(PHONE_SCRIPT), mode, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=workdir,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read, name=f"pyvoip-{mode}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.rstrip()}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def wait_for(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The first `name` event, waiting up to timeout (None when the phone exits first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.get("event") == name]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    return None
                self._cond.wait(min(left, 0.2))

    def wait(self, timeout: float) -> int | None:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-2000:]
        return f"{self.mode} events={self.events} stderr={err}"


def wait_call_end(callee: PhoneProcess, caller: PhoneProcess, timeout: float) -> None:
    """Until the callee got its BYE, or either phone gave up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callee.of("bye") or not callee.alive() or not caller.alive():
            return
        time.sleep(0.05)
