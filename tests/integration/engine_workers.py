"""The projector engine's Faust workers as the stack runs them, for tests on settings of their own.

`python -m processors views|chatviews worker` is exactly the `views` / `chatviews` component
(stack/services.py); each test module names its daemons so that its pid files and logs never
meet the session stack's, and gives them its own topic prefix, hence its own consumer groups.
"""

from __future__ import annotations

import sys

from boxoffice.settings import PROJECT_ROOT, Settings
from stack.processes import Daemon
from stack.services import PROCESSES, settings_env

ENGINE_COMPONENTS = ("views", "chatviews")


def engine_daemon(env: Settings, name: str, component: str) -> Daemon:
    """The daemon (not started) running the engine of `component` under the name `name`."""
    assert component in ENGINE_COMPONENTS, component
    _, marker = PROCESSES[component]
    return Daemon(name, env.run_dir, env.log_dir, marker=marker)


def start_engine(daemon: Daemon, env: Settings, component: str) -> None:
    args, _ = PROCESSES[component]
    daemon.start([sys.executable, *args], env=settings_env(env), cwd=PROJECT_ROOT)
