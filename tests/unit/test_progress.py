"""The progress bar shows on a terminal only: redirected output gets nothing extra."""

from __future__ import annotations

import io
import os
import select

from core.progress import ProgressBar


def test_nothing_is_written_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    with ProgressBar("deck", out) as bar:
        bar(5, 10)
        bar(10, 10)
    assert out.getvalue() == ""


def test_a_terminal_gets_the_bar_and_a_final_newline() -> None:
    master, replica = os.openpty()
    try:
        with open(replica, "w", closefd=False) as tty, ProgressBar("deck", tty) as bar:
            bar(5, 10)
            bar(10, 10)
        shown = _read_line(master)
    finally:
        os.close(master)
        os.close(replica)
    assert "deck [" in shown and "50%" in shown and "100%" in shown and "10/10" in shown
    assert shown.endswith("\n") or shown.endswith("\r\n")


def _read_line(fd: int) -> str:
    """What the terminal received up to its final newline: one read may return only a part
    of what was written (the pty passes it on in pieces)."""
    got = b""
    while not got.endswith(b"\n") and select.select([fd], [], [], 5)[0]:
        got += os.read(fd, 4096)
    return got.decode()
