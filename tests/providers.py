"""Where the tests' Kafka and PostgreSQL come from: containers when Docker answers, else the
project's native launcher. One fixture each, two providers, the same tests.

The native provider runs a test stack of its own (var/test, its own ports), so a developer's
`make run` stack is never disturbed by `make test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from boxoffice.settings import PROJECT_ROOT, Settings

MODES = ("auto", "native", "docker")


def mode() -> str:
    wanted = os.environ.get("BOXOFFICE_TEST_SERVICES", "auto")
    if wanted not in MODES:
        raise ValueError(f"BOXOFFICE_TEST_SERVICES must be one of {MODES}, not {wanted!r}")
    if wanted != "auto":
        return wanted
    return "docker" if docker_answers() else "native"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode == 0


def base_settings() -> Settings:
    """The native test stack: away from the dev stack's directory and ports.

    BOXOFFICE_TEST_SLOT=N (default 0) moves the whole test stack to var/test-N and ports +N*100,
    so several test sessions can run side by side on one machine.
    """
    slot = int(os.environ.get("BOXOFFICE_TEST_SLOT", "0"))
    shift = slot * 100
    return Settings(
        var_dir=PROJECT_ROOT / "var" / ("test" if slot == 0 else f"test-{slot}"),
        http_port=18000 + shift,
        kafka_bootstrap=f"127.0.0.1:{19092 + shift}",
        kafka_controller_port=19093 + shift,
        pg_port=15433 + shift,
        topic_partitions=3,
        # Tests sign up hundreds of users from one address; the limiter itself is unit-tested.
        rate_limit_per_s=100_000,
        rate_limit_burst=100_000,
    )


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap: str
    provider: str


@dataclass(frozen=True)
class PostgresEndpoint:
    host: str
    port: int
    user: str
    password: str
    database: str
    provider: str


@contextmanager
def kafka(settings: Settings, provider: str) -> Iterator[KafkaEndpoint]:
    if provider == "docker":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:8.1.0").with_kraft() as container:
            yield KafkaEndpoint(container.get_bootstrap_server(), "docker")
        return
    from stack.broker import KafkaServer

    server = KafkaServer(settings)
    started_here = not server.running()
    server.start()
    try:
        yield KafkaEndpoint(settings.kafka_bootstrap, "native")
    finally:
        if started_here:
            server.stop()


@contextmanager
def postgres(settings: Settings, provider: str) -> Iterator[PostgresEndpoint]:
    if provider == "docker":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(
            "postgres:16",
            username=settings.pg_user,
            password=settings.pg_password,
            dbname=settings.pg_database,
        ) as container:
            yield PostgresEndpoint(
                container.get_container_host_ip(),
                int(container.get_exposed_port(5432)),
                settings.pg_user,
                settings.pg_password,
                settings.pg_database,
                "docker",
            )
        return
    from stack.database import PostgresServer

    server = PostgresServer(settings)
    started_here = not server.running()
    server.start()
    try:
        yield PostgresEndpoint(
            settings.pg_host,
            settings.pg_port,
            settings.pg_user,
            settings.pg_password,
            settings.pg_database,
            "native",
        )
    finally:
        if started_here:
            server.stop()
