"""Background processes of the native stack: start detached, track by pid file, stop politely.

A pid file alone can lie (the pid may have been reused after a crash), so a process counts
as ours only when its command line still contains the marker we started it with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Daemon:
    name: str
    run_dir: Path
    log_dir: Path
    marker: str  # a string that appears in the process's command line

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid) or self.marker not in _cmdline(pid):
            # Stale: the process died (or the pid was recycled) without cleaning up.
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start argv in its own session, output appended to the log file. Idempotent."""
        existing = self.pid()
        if existing is not None:
            return existing
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                user=user,
            )
        # Until exec() completes the child still shows our own command line; wait for it so
        # that pid() does not mistake the fresh child for a recycled pid.
        deadline = time.monotonic() + 5
        while self.marker not in _cmdline(proc.pid) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self, timeout_s: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Signal the process group and wait; escalate to SIGKILL after timeout_s."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> bool:
        """kill -9, for crash tests: no chance to flush or commit anything."""
        return self.stop(timeout_s=0.0, sig=signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (we are its parent and have not reaped it) is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def started_at(pid: int) -> float | None:
    """When the process started, as Unix time; None when it is gone."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
    daemon: Daemon | None = None,
    *,
    watch: Callable[[], None] | None = None,
) -> None:
    """Poll check() until it returns True; raise TimeoutError naming what we waited for.

    With a daemon, give up as soon as it has died, quoting the end of its log. watch() is
    called before every attempt and gives up by raising (a supervised child that died, say).
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if daemon is not None and not daemon.running():
            raise RuntimeError(f"{what}: the process exited.\n{daemon.log_tail()}")
        if watch is not None:
            watch()
        try:
            if check():
                return
        except Exception as exc:  # the service is still coming up; remember why
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} did not answer within {timeout_s:.0f}s (last error: {last_error})")
