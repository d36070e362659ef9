"""The native PostgreSQL server: a cluster owned by the project, data under var/."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from boxoffice.settings import Settings
from stack.processes import Daemon, wait_until


def _bindir() -> Path:
    # Debian installs each major version side by side; the newest wins.
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: run `make bootstrap`")


class PostgresServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.var_dir / "postgres"
        self.data_dir = self.home / "data"
        self.daemon = Daemon(
            "postgres", settings.run_dir, settings.log_dir, marker=str(self.data_dir)
        )
        # The server refuses to run as root, so root runs it as the `postgres` account.
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        if self.run_as is None:
            return
        entry = pwd.getpwnam(self.run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def ensure_initialised(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        self._chown(self.home)
        pwfile = self.home / "initdb.pw"
        pwfile.write_text(self.settings.pg_password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            subprocess.run(
                [
                    str(_bindir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.pg_user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                user=self.run_as,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, wait_s: float = 60.0) -> None:
        self.ensure_initialised()
        s = self.settings
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.daemon.start(
            [
                str(_bindir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                f"port={s.pg_port}",
                "-c",
                f"listen_addresses={s.pg_host}",
                # TCP only: a socket path under a deep checkout can exceed the 107-byte limit.
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "synchronous_commit=on",
            ],
            user=self.run_as,
        )
        wait_until(
            self.answers_admin, wait_s, f"PostgreSQL on {s.pg_host}:{s.pg_port}", daemon=self.daemon
        )
        self.ensure_database()
        wait_until(self.answers, wait_s, f"PostgreSQL database {s.pg_database}")

    def _admin_dsn(self) -> str:
        s = self.settings
        return (
            f"host={s.pg_host} port={s.pg_port} user={s.pg_user} "
            f"password={s.pg_password} dbname=postgres"
        )

    def answers_admin(self) -> bool:
        with psycopg.connect(self._admin_dsn(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def answers(self) -> bool:
        with psycopg.connect(self.settings.pg_dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def ensure_database(self) -> None:
        name = self.settings.pg_database
        with psycopg.connect(self._admin_dsn(), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
                )

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        return self.daemon.stop(timeout_s=60, sig=signal.SIGINT)

    def running(self) -> bool:
        return self.daemon.running()
