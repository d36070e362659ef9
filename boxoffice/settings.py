"""The one settings object. Every knob is an environment variable with the prefix BOXOFFICE_."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    # Where the native stack keeps its data, logs and pid files. Not /tmp: journals must
    # survive a reboot of the machine as well as a restart of the broker.
    var_dir: Path = PROJECT_ROOT / "var"

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    api_workers: int = 1

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    topic_prefix: str = "boxoffice"
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int = 1

    # PostgreSQL
    pg_host: str = "127.0.0.1"
    pg_port: int = 5433
    pg_user: str = "boxoffice"
    pg_password: str = "boxoffice"
    pg_database: str = "boxoffice"
    pg_schema: str = "public"
    pg_pool_min: int = 1
    pg_pool_max: int = 10

    # Request/reply: how long a command waits for the decider before answering 503.
    command_timeout_s: float = 5.0

    # Commands are limited per user by a token bucket.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 200

    # Snapshots: every N events or T seconds, whichever comes first.
    snapshot_every_events: int = 1000
    snapshot_every_s: float = 5.0

    # Accounts
    token_secret: str = "change-me-in-production-boxoffice"
    token_ttl_s: int = 24 * 3600

    fake_payment_slow_s: float = 3.0

    # The processors' Faust worker
    processor_id: str = "processors"
    # Distinguishes decider instances when scaled out; part of their transactional id.
    processor_instance: str = "0"

    @property
    def pg_dsn(self) -> str:
        return (
            f"host={self.pg_host} port={self.pg_port} user={self.pg_user} "
            f"password={self.pg_password} dbname={self.pg_database}"
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
