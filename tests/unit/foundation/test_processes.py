"""Daemons are tracked by pid file and command line, so stale pid files do not fool `up`."""

from __future__ import annotations

import sys
from pathlib import Path

from stack.processes import Daemon


def daemon(tmp_path: Path) -> Daemon:
    return Daemon("sleeper", tmp_path / "run", tmp_path / "log", marker="boxoffice-test-sleeper")


def test_start_is_idempotent_and_stop_stops(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "boxoffice-test-sleeper"]
    pid = d.start(argv)
    try:
        assert d.running()
        assert d.start(argv) == pid  # a second start finds the first
    finally:
        assert d.stop(timeout_s=5)
    assert not d.running()
    assert not d.pid_file.exists()


def test_a_stale_pid_file_is_recognised_and_removed(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    d.run_dir.mkdir(parents=True)
    # Our own pid is alive but is not the daemon: its command line lacks the marker.
    import os

    d.pid_file.write_text(f"{os.getpid()}\n")
    assert d.pid() is None
    assert not d.pid_file.exists()
    d.pid_file.write_text("not a pid\n")
    assert not d.running()


def test_a_daemon_that_dies_at_once_leaves_its_log(tmp_path: Path) -> None:
    d = daemon(tmp_path)
    d.start([sys.executable, "-c", "print('boom'); raise SystemExit(3)", "boxoffice-test-sleeper"])
    import time

    deadline = time.monotonic() + 10
    while d.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not d.running()
    assert "boom" in d.log_tail()
