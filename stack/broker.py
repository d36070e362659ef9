"""The native Apache Kafka 4.1 broker: KRaft combined mode, jars from Maven Central."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from boxoffice.settings import PROJECT_ROOT, Settings
from stack.processes import Daemon, wait_until

KAFKA_RESOURCES = PROJECT_ROOT / "stack" / "kafka"
KAFKA_MAIN = "kafka.Kafka"


class KafkaServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.var_dir / "kafka"
        self.data_dir = self.home / "data"
        self.properties = self.home / "server.properties"
        self.libs = jar_cache(settings)
        host, port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.daemon = Daemon(
            "kafka", settings.run_dir, settings.log_dir, marker=str(self.properties)
        )

    def ensure_jars(self) -> None:
        if (self.libs / "kafka_2.13-4.1.1.jar").exists():
            return
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven is missing: run `make bootstrap` to install it")
        self.libs.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs}",
                "-DincludeScope=runtime",
            ],
            cwd=KAFKA_RESOURCES,
            check=True,
        )

    def write_config(self) -> None:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cport = s.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{cport}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(s.topic_partitions),
            # One broker here: internal topics cannot have more replicas than brokers.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            # Journals are created by the project with explicit settings; never by accident.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.flush.interval.messages": "9223372036854775807",
        }
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        if not self.properties.exists() or self.properties.read_text() != text:
            self.properties.write_text(text)

    def ensure_formatted(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            # Kafka wants a base64 UUID; uuid4's urlsafe form without padding is one.
            import base64

            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_file.write_text(cid)
        cluster_id = cluster_file.read_text().strip()
        subprocess.run(
            [
                "java",
                *self._log_opts(),
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties),
                "--ignore-formatted",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _log_opts(self) -> list[str]:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        return [
            f"-Dlog4j2.configurationFile={KAFKA_RESOURCES / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.settings.log_dir}",
        ]

    def start(self, wait_s: float = 90.0) -> None:
        self.ensure_jars()
        self.write_config()
        self.ensure_formatted()
        heap = self.settings.kafka_heap
        self.daemon.start(
            [
                "java",
                "-Xms512m",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                *self._log_opts(),
                "-cp",
                f"{self.libs}/*",
                KAFKA_MAIN,
                str(self.properties),
            ]
        )
        wait_until(
            self.answers, wait_s, f"Kafka on {self.settings.kafka_bootstrap}", daemon=self.daemon
        )

    def answers(self) -> bool:
        """True when the broker serves metadata (not merely when the port is open)."""
        import socket

        from confluent_kafka.admin import AdminClient

        # A plain connect first: librdkafka logs every refused connection loudly.
        with socket.create_connection((self.host, self.port), timeout=1):
            pass
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 0})
        meta = admin.list_topics(timeout=2)
        return len(meta.brokers) >= 1

    def stop(self) -> bool:
        return self.daemon.stop(timeout_s=60)

    def kill(self) -> bool:
        return self.daemon.kill()

    def running(self) -> bool:
        return self.daemon.running()


def jar_cache(settings: Settings) -> Path:
    # Shared by the dev and the test stacks: the jars are the same whatever var_dir says.
    return PROJECT_ROOT / "var" / "cache" / "kafka-libs"
