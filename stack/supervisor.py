"""`python -m stack.supervisor NAME --state FILE -- COMMAND...`: keep one process running.

The supervisor starts COMMAND and starts it again whenever it dies without having been told to
stop, waiting a little longer after each quick death (0.5 s doubling up to 30 s; back to 0.5 s
once a run has lasted a minute), so a process that cannot start does not spin the CPU. SIGTERM,
SIGINT and SIGHUP are passed on to the child and end the supervision.

Its state goes to FILE as JSON after every change (child pid, when it started, how many restarts,
how the last run ended), which is what `boxoffice status` and `boxoffice up` read.

The child stays in the supervisor's process group, so `Daemon.stop` and `Daemon.kill` (signal
the group) reach both at once: kill -9 of the group is a crash of the machine, not something the
supervisor can repair. The supervisor is also a child subreaper: whatever the child left behind
when it died (worker processes of its own) is killed before it is started again, so a restart
never finds its port or its files held by an orphan.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A run that lasted this long was not a crash loop: the next restart is quick again.
HEALTHY_RUN_S = 60.0

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class SupervisorState:
    name: str
    supervisor_pid: int
    # "running" (child_pid is the live child), "waiting" (backing off before a restart),
    # "stopping" (told to stop, waiting for the child) or "stopped".
    phase: str
    child_pid: int | None = None
    started_at: float | None = None  # Unix time the current (or last) child started
    restarts: int = 0
    last_exit_code: int | None = None  # set when the last child exited by itself
    last_exit_signal: str | None = None  # set when a signal ended it, e.g. "SIGKILL"
    last_exit_at: float | None = None
    last_restart_at: float | None = None

    def last_exit(self) -> str | None:
        """How the last child ended, as a phrase: "killed by SIGKILL", "exited with code 1"."""
        if self.last_exit_signal is not None:
            return f"killed by {self.last_exit_signal}"
        if self.last_exit_code is not None:
            return f"exited with code {self.last_exit_code}"
        return None


def command(name: str, state_file: Path, argv: Sequence[str]) -> list[str]:
    """The command line that runs argv under a supervisor."""
    return [
        sys.executable,
        "-m",
        "stack.supervisor",
        name,
        "--state",
        str(state_file),
        "--",
        *argv,
    ]


def read_state(path: Path) -> SupervisorState | None:
    """The last state a supervisor wrote to path; None when there is none or it is unreadable."""
    try:
        raw: Any = json.loads(path.read_text())
        return SupervisorState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(path: Path, state: SupervisorState) -> None:
    # Whole or not at all: a reader never sees half a file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(asdict(state)))
    os.replace(temporary, path)


def _prctl(option: int, value: int) -> None:
    # Best effort: Linux only, and supervision still works without it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _log(name: str, message: str) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    print(f"{stamp} supervisor {name}: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, name: str, state_file: Path, argv: Sequence[str]) -> None:
        self.name = name
        self.state_file = state_file
        self.argv = list(argv)
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.state = SupervisorState(name=name, supervisor_pid=os.getpid(), phase="waiting")

    def _save(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        _write_state(self.state_file, self.state)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        self.stopping = True
        child = self.child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def _start_child(self) -> subprocess.Popen[bytes]:
        parent = os.getpid()

        def die_with_parent() -> None:
            # If the supervisor alone is killed, the child is told to stop rather than left
            # running unsupervised (and unseen by `boxoffice up`, which would start another).
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)

        # preexec_fn is unsafe only with threads, and the supervisor has none.
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )

    def _reap_orphans(self) -> None:
        """Kill and reap whatever the dead child left behind (reparented to us as subreaper)."""
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                # Killed ones not yet gone: give them a moment.
                time.sleep(0.05)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def run(self) -> int:
        for signum in _FORWARDED:
            signal.signal(signum, self._on_signal)
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        backoff = BACKOFF_FIRST_S
        code = 0
        while not self.stopping:
            child = self._start_child()
            self.child = child
            started = time.monotonic()
            self._save(phase="running", child_pid=child.pid, started_at=time.time())
            _log(self.name, f"started pid {child.pid}: {' '.join(self.argv)}")
            if self.stopping:  # the signal came while the child was being started
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
            code = child.wait()
            lasted = time.monotonic() - started
            exit_signal = _signal_name(-code) if code < 0 else None
            self._save(
                last_exit_code=None if code < 0 else code,
                last_exit_signal=exit_signal,
                last_exit_at=time.time(),
            )
            self._reap_orphans()
            if self.stopping:
                break
            backoff = BACKOFF_FIRST_S if lasted >= HEALTHY_RUN_S else backoff
            self._save(phase="waiting", restarts=self.state.restarts + 1)
            _log(
                self.name,
                f"pid {child.pid} {self.state.last_exit()} after {lasted:.1f}s; "
                f"starting it again in {backoff:.1f}s (restart {self.state.restarts})",
            )
            self._sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            if not self.stopping:
                self._save(last_restart_at=time.time())
        self._save(phase="stopped")
        _log(self.name, "stopped")
        # Told to stop and the child obliged: that is a clean exit, whatever signal ended it.
        return 0 if code < 0 else code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m stack.supervisor",
        usage="%(prog)s NAME --state FILE -- COMMAND...",
        description="Run a command; start it again whenever it dies.",
    )
    parser.add_argument("name", help="what the command is, for the log and the state file")
    parser.add_argument("--state", type=Path, required=True, help="where to write the state")
    if "--" not in args or args.index("--") == len(args) - 1:
        parser.error("no command given (put it after --)")
    split = args.index("--")
    options = parser.parse_args(args[:split])
    return Supervisor(options.name, options.state, args[split + 1 :]).run()


if __name__ == "__main__":
    sys.exit(main())
