"""The one settings object. Every knob is an environment variable with the prefix BOXOFFICE_."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"

# Where the token signing secret lives when BOXOFFICE_TOKEN_SECRET is not set, under var_dir.
SECRET_FILE = Path("secrets") / "token_secret"
# 48 random bytes (64 characters): well past HMAC-SHA256's 32-byte key strength.
SECRET_BYTES = 48


def _secret_in_var_dir(validated: dict[str, Any]) -> str:
    return load_or_create_secret(Path(validated["var_dir"]) / SECRET_FILE)


def load_or_create_secret(path: Path) -> str:
    """The secret in path, created first if missing. Safe when several processes race: the
    secret is written whole to a private temporary file, then hard-linked into place, which
    fails if another process got there first, so nobody ever reads a half-written secret and
    everybody ends up with the one that won."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(SECRET_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # If another process won the race, its secret is the one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # As ssh does with private keys: a secret others can read is no longer a secret.
        raise PermissionError(
            f"{path} is open to other users (mode {mode:o}); "
            f"run `chmod 600 {path}` or set BOXOFFICE_TOKEN_SECRET"
        )
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty; delete it to have a new secret made")
    return secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    # Where the native stack keeps its data, logs and pid files. Not /tmp: journals must
    # survive a reboot of the machine as well as a restart of the broker.
    var_dir: Path = DEFAULT_VAR_DIR

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # One uvicorn worker per core: each instance keeps only what the journal can rebuild, and
    # a read about to say "not found" first catches up with every worker's replies.
    api_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

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
    # The deciders snapshot a partition's state once this many events were journaled on it
    # since its last snapshot, at a moment without commands waiting (or at 10x this, however
    # busy), so a restart folds only the events after the snapshot. 0 turns them off.
    decider_snapshot_every_events: int = 20_000
    # Kafka transactions a decider process keeps in flight at once, each on its own
    # transactional producer: the next batch is decided while the last one commits.
    decider_transactions_in_flight: int = Field(default=3, ge=1, le=16)
    # How long a reader that folds (the views, the chat views) lets the broker hold its fetch
    # for a batch's worth of records (producers/fetching.py): what a read-your-writes read
    # may wait on top, against one wake-up per transaction.
    fold_fetch_wait_ms: int = Field(default=20, ge=0, le=5000)

    # Accounts. The token signing secret has no default value: when BOXOFFICE_TOKEN_SECRET is
    # unset (or empty) it is read from var_dir/secrets/token_secret, which the first process
    # that needs it creates with random bytes (mode 0600). So `boxoffice up`, the CLI, the API
    # workers and the tests of one var_dir all sign with the same key, and no two installations
    # share one unless told to.
    token_secret: str = Field(default_factory=_secret_in_var_dir, repr=False)
    token_ttl_s: int = 24 * 3600

    fake_payment_slow_s: float = 3.0
    # The reconciler leaves a payment intent this long to the API that started it before
    # settling it itself; longer than a slow charge plus a command timeout (3 + 5 s).
    payment_grace_s: float = 15.0

    # The processors' Faust worker
    processor_id: str = "processors"
    # Distinguishes decider instances when scaled out; part of their transactional id.
    processor_instance: str = "0"

    @field_validator("token_secret")
    @classmethod
    def _blank_secret_means_unset(cls, value: str, info: ValidationInfo) -> str:
        return value if value.strip() else _secret_in_var_dir(info.data)

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
