"""The servers are the real ones, set up the way the project declares."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)

from boxoffice.settings import Settings
from producers.topics import ALL_TOPICS
from snapshots.database import conninfo, migrations
from tests.providers import KafkaEndpoint


def test_the_native_broker_is_kafka_4_1_1_in_kraft_mode(
    kafka: KafkaEndpoint, settings: Settings
) -> None:
    if kafka.provider != "native":
        pytest.skip("the container image pins the broker version; this reads the native log")
    log = (settings.var_dir / "log" / "kafka-server.log").read_text(errors="replace")
    assert "Kafka version: 4.1.1" in log
    assert "KafkaRaftServer" in log or "process.roles = [broker, controller]" in log


def test_every_declared_topic_exists_with_journal_retention(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = [t.name(settings) for t in ALL_TOPICS]
    metadata = admin.list_topics(timeout=10)
    for name in names:
        assert name in metadata.topics
        assert len(metadata.topics[name].partitions) == settings.topic_partitions
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    declared = {t.name(settings): t.retention.value for t in ALL_TOPICS}
    for resource, future in admin.describe_configs(resources).items():
        config = future.result()
        assert config["retention.ms"].value == declared[resource.name], resource.name
        assert config["min.insync.replicas"].value == str(settings.topic_min_insync_replicas)


def test_postgres_has_every_migration_applied(settings: Settings) -> None:
    with psycopg.connect(conninfo(settings)) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY 1")]
        version = conn.execute("SHOW server_version").fetchone()
    assert applied == [name for name, _ in migrations()]
    assert version is not None and int(str(version[0]).split(".")[0]) >= 15
