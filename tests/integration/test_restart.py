"""The journals survive a broker restart done with the project's own commands."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest
from confluent_kafka import Producer

from api.auth import service_token
from boxoffice.settings import Settings
from producers.topics import SHOW_COMMANDS
from stack.services import Stack, settings_env
from tests.integration.journal import read_all
from tests.providers import KafkaEndpoint

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]


def boxoffice(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [".venv/bin/boxoffice", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kafka_stopped_and_started_again_with_boxoffice_up_keeps_every_entry(
    kafka: KafkaEndpoint, settings: Settings, stack: Stack
) -> None:
    if kafka.provider != "native":
        pytest.skip(
            "restarts the native broker with `boxoffice up`; containers restart differently"
        )
    topic = SHOW_COMMANDS.name(settings)
    stream = f"restart-{uuid.uuid4().hex}"
    written = [f"entry-{i}".encode() for i in range(500)]
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for value in written:
        producer.produce(topic, key=stream, value=value)
    assert producer.flush(30) == 0

    assert "kafka      stopped" in boxoffice(settings, "down", "kafka")
    assert not stack.kafka.running()
    out = boxoffice(settings, "up")
    assert "kafka      ok" in out and "pipeline   ok" in out

    journal = read_all(settings, topic)
    assert [v for k, v in journal if k == stream] == written

    # The processors and API came through the outage: a probe still walks the pipe.
    response = httpx.post(
        f"{settings.api_url}/ops/probes",
        headers={"Authorization": f"Bearer {service_token(settings)}"},
        timeout=30,
    )
    assert response.status_code == 201
