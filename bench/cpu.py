"""CPU time per component of one stack, read from /proc: what each part costs.

A process counts under the first role its command line (or its nearest ancestor's) names, so
uvicorn's workers count as the API and PostgreSQL's backends as PostgreSQL; only processes of
the stack whose var dir is given (from their environment) or children of the bench count.
"""

from __future__ import annotations

import os
import time

# Which stack component a process belongs to: the first fragment found in its command line or
# that of its nearest ancestor with one (uvicorn workers and PostgreSQL backends are children).
ROLES = (
    ("baseline api", "bench.pg_baseline"),
    ("api", "boxoffice.cli api"),
    ("api", "granian"),  # the API under granian, when compared with uvicorn
    ("deciders", "processors.deciders"),
    ("views", "processors views"),
    ("chatviews", "processors chatviews"),
    ("processors", "processors worker"),
    ("reconciler", "processors.reconciler"),
    ("kafka", "java"),
    ("postgres", "postgres"),
)
TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command line + the var dir from its env)."""
    found: dict[int, tuple[int, float, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        cmdline = _read(f"/proc/{name}/cmdline").replace(b"\0", b" ").decode(errors="replace")
        environ = _read(f"/proc/{name}/environ")
        var = next(
            (v for v in environ.split(b"\0") if v.startswith(b"BOXOFFICE_VAR_DIR=")), b""
        ).decode(errors="replace")
        found[int(name)] = (int(fields[1]), cpu, f"{cmdline} {var}")
    return found


def _machine_busy() -> float:
    """CPU seconds the machine spent busy, all cores together."""
    parts = _read("/proc/stat").split(b"\n", 1)[0].split()[1:]
    values = [int(p) for p in parts]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


class CpuSplit:
    """CPU seconds per component of one stack (found by its var dir) between two moments."""

    def __init__(self, var_dir: str) -> None:
        self.var_dir = var_dir
        self.me = os.getpid()

    def sample(self) -> tuple[float, float, dict[str, float]]:
        procs = _processes()
        roles: dict[str, float] = {}
        for pid, (_, cpu, _text) in procs.items():
            role = self._role(pid, procs)
            if role is not None:
                roles[role] = roles.get(role, 0.0) + cpu
        return time.monotonic(), _machine_busy(), dict(roles)

    def _role(self, pid: int, procs: dict[int, tuple[int, float, str]]) -> str | None:
        mine = False
        role: str | None = None
        at: int | None = pid
        for _ in range(12):
            if at is None or at not in procs:
                break
            parent, _, text = procs[at]
            if role is None:
                role = next((r for r, frag in ROLES if frag in text), None)
            if at == self.me:
                # The bench's own children (the baseline API) count under their role.
                return role or "load generator"
            mine = mine or self.var_dir in text
            at = parent
        return role if mine else None

    @staticmethod
    def shares(
        before: tuple[float, float, dict[str, float]], after: tuple[float, float, dict[str, float]]
    ) -> dict[str, float]:
        """Share of one core per component, the machine's total and what nobody here used."""
        wall = max(1e-9, after[0] - before[0])
        out = {
            role: round((after[2].get(role, 0.0) - before[2].get(role, 0.0)) / wall, 2)
            for role in sorted(after[2])
        }
        out = {role: share for role, share in out.items() if share > 0}
        machine = round((after[1] - before[1]) / wall, 2)
        out["others (not this stack)"] = round(max(0.0, machine - sum(out.values())), 2)
        out["machine"] = machine
        return out


def per_decision_ms(
    before: tuple[float, float, dict[str, float]],
    after: tuple[float, float, dict[str, float]],
    decisions: int,
) -> dict[str, float]:
    """CPU milliseconds per decision by component between two samples (largest first)."""
    used = {role: after[2][role] - before[2].get(role, 0.0) for role in after[2]}
    return {
        role: round(seconds * 1000 / max(decisions, 1), 2)
        for role, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        if seconds > 0
    }
