"""CPU time spent by each part of the stack, read from /proc: what a decision costs where.

Every process is counted under the first part its command line (or an ancestor's) names, so
uvicorn's worker processes count as the API and PostgreSQL's backends as PostgreSQL. A
process that ends between two readings loses its share; the parts measured here live for the
whole run.
"""

from __future__ import annotations

import os
from pathlib import Path

# (part, what its command line contains), first match wins.
PARTS: tuple[tuple[str, str], ...] = (
    ("kafka", "kafka.Kafka"),
    ("postgres", "postgres"),
    ("deciders", "processors.deciders"),
    ("views", "processors views"),
    ("chatviews", "processors chatviews"),
    ("processors", "processors worker"),
    ("reconciler", "processors.reconciler"),
    ("api", "boxoffice.cli api"),
    ("baseline api", "bench.pg_baseline"),
    ("load generator", "bench."),
)
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far)."""
    found: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        # The command name (field 2) may hold spaces; the fields after it are plain.
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        found[int(entry.name)] = (ppid, cmdline, (utime + stime) * _TICK_S)
    return found


def _part(pid: int, processes: dict[int, tuple[int, str, float]]) -> str | None:
    seen = set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        ppid, cmdline, _ = processes[pid]
        for part, marker in PARTS:
            if marker in cmdline:
                return part
        pid = ppid
    return None


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the stack that is running."""
    processes = _processes()
    totals: dict[str, float] = {}
    for pid, (_, _, seconds) in processes.items():
        part = _part(pid, processes)
        if part is not None:
            totals[part] = totals.get(part, 0.0) + seconds
    return totals


def per_decision_ms(
    before: dict[str, float], after: dict[str, float], decisions: int
) -> dict[str, float]:
    """CPU milliseconds per decision by part, between two readings (largest first)."""
    used = {part: after[part] - before.get(part, 0.0) for part in after}
    return {
        part: round(seconds * 1000 / max(decisions, 1), 2)
        for part, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        if seconds > 0
    }
