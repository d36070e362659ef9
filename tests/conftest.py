"""Session fixtures: real Kafka and PostgreSQL (see tests/providers.py), and per-run isolation
by topic prefix and schema rather than by restarting servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from boxoffice.settings import Settings
from producers.topics import ensure_topics
from snapshots.database import migrate
from stack.services import Stack
from tests import providers

APP_COMPONENTS = ("deciders", "views", "chatviews", "reconciler", "processors", "api")


@pytest.fixture(scope="session")
def services_provider() -> str:
    return providers.mode()


@pytest.fixture(scope="session")
def kafka(services_provider: str) -> Iterator[providers.KafkaEndpoint]:
    with providers.kafka(providers.base_settings(), services_provider) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres(services_provider: str) -> Iterator[providers.PostgresEndpoint]:
    with providers.postgres(providers.base_settings(), services_provider) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def settings(kafka: providers.KafkaEndpoint, postgres: providers.PostgresEndpoint) -> Settings:
    """Settings for this test run: unique topics and schema on the shared servers."""
    run = uuid.uuid4().hex[:10]
    settings = providers.base_settings().model_copy(
        update={
            "kafka_bootstrap": kafka.bootstrap,
            "pg_host": postgres.host,
            "pg_port": postgres.port,
            "topic_prefix": f"t{run}",
            "pg_schema": f"t{run}",
        }
    )
    ensure_topics(settings)
    migrate(settings)
    return settings


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The processors and the API, running as real processes against the test servers."""
    running = Stack(settings)
    # Leftovers of an interrupted run would carry another run's settings: replace them.
    running.down(APP_COMPONENTS, say=lambda _: None)
    running.up(APP_COMPONENTS, say=lambda _: None)
    try:
        yield running
    finally:
        running.down(APP_COMPONENTS, say=lambda _: None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that stop servers run last, so no other test sees the outage they cause; storms
    # after them, so no other test waits behind the backlog of thousands of events they leave.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("storm") is not None,
            item.get_closest_marker("disruptive") is not None,
        )
    )
