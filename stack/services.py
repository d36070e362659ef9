"""The whole local stack: PostgreSQL, Kafka, the processors and the API, up and down."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from boxoffice.settings import PROJECT_ROOT, Settings
from producers.topics import ensure_topics
from snapshots.database import migrate
from stack.broker import KafkaServer
from stack.database import PostgresServer
from stack.processes import Daemon, wait_until

COMPONENTS = ("postgres", "kafka", "deciders", "views", "chatviews", "processors", "api")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"BOXOFFICE_{name.upper()}"] = str(value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Stack:
    settings: Settings

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.settings)

    @property
    def kafka(self) -> KafkaServer:
        return KafkaServer(self.settings)

    def _daemon(self, name: str, marker: str) -> Daemon:
        return Daemon(name, self.settings.run_dir, self.settings.log_dir, marker=marker)

    @property
    def processors(self) -> Daemon:
        return self._daemon("processors", "processors worker")

    @property
    def deciders(self) -> Daemon:
        return self._daemon("deciders", "processors.deciders")

    @property
    def views(self) -> Daemon:
        return self._daemon("views", "processors.views")

    @property
    def chatviews(self) -> Daemon:
        return self._daemon("chatviews", "processors.chat_views")

    @property
    def api(self) -> Daemon:
        return self._daemon("api", "boxoffice.cli api")

    def up(self, only: tuple[str, ...] = COMPONENTS, say: Callable[[str], None] = print) -> None:
        s = self.settings
        if "postgres" in only:
            self.postgres.start()
            applied = migrate(s)
            say(
                f"postgres   ok  {s.pg_host}:{s.pg_port}/{s.pg_database}"
                + (f" (migrated: {', '.join(applied)})" if applied else "")
            )
        if "kafka" in only:
            self.kafka.start()
            created = ensure_topics(s)
            say(
                f"kafka      ok  {s.kafka_bootstrap}"
                + (f" (created {len(created)} topics)" if created else "")
            )
        env = settings_env(s)
        for name, daemon, module in (
            ("deciders", self.deciders, "processors.deciders"),
            ("views", self.views, "processors.views"),
            ("chatviews", self.chatviews, "processors.chat_views"),
        ):
            if name in only:
                daemon.start([sys.executable, "-m", module], env=env, cwd=PROJECT_ROOT)
                say(f"{name:<10} ok  pid {daemon.pid()}")
        if "processors" in only:
            self.processors.start(
                [sys.executable, "-m", "processors", "worker", "-l", "info", "--without-web"],
                env=env,
                cwd=PROJECT_ROOT,
            )
            say(f"processors ok  pid {self.processors.pid()}")
        if "api" in only:
            self.api.start(
                [sys.executable, "-m", "boxoffice.cli", "api"], env=env, cwd=PROJECT_ROOT
            )
            wait_until(self.api_ready, 60, f"the API's /readyz on {s.api_url}", daemon=self.api)
            say(f"api        ok  {s.api_url}")
        if "processors" in only and "api" in only:
            # The probe walks producer -> processor -> journal -> reply: the pipe is live.
            wait_until(self.probe, 90, "the pipeline probe", interval_s=1.0, daemon=self.processors)
            say("pipeline   ok  a probe went through Kafka and the processors")

    def down(self, only: tuple[str, ...] = COMPONENTS, say: Callable[[str], None] = print) -> None:
        for name in reversed(COMPONENTS):
            if name not in only:
                continue
            stoppers: dict[str, Callable[[], bool]] = {
                "api": self.api.stop,
                "deciders": self.deciders.stop,
                "views": self.views.stop,
                "chatviews": self.chatviews.stop,
                "processors": self.processors.stop,
                "kafka": self.kafka.stop,
                "postgres": self.postgres.stop,
            }
            stopped = stoppers[name]()
            say(f"{name:<10} {'stopped' if stopped else 'was not running'}")

    def status(self) -> dict[str, bool]:
        return {
            "postgres": self.postgres.running(),
            "kafka": self.kafka.running(),
            "deciders": self.deciders.running(),
            "views": self.views.running(),
            "chatviews": self.chatviews.running(),
            "processors": self.processors.running(),
            "api": self.api.running(),
        }

    def api_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.settings.api_url}/readyz", timeout=5) as resp:
            return bool(resp.status == 200)

    def probe(self) -> bool:
        request = urllib.request.Request(f"{self.settings.api_url}/ops/probes", method="POST")
        with urllib.request.urlopen(request, timeout=15) as resp:
            return bool(resp.status == 201)
