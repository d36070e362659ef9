"""PostgreSQL access: the connection pools and the versioned schema migrations.

Every connection runs with search_path set to the configured schema, so tests can give
themselves a schema of their own on a shared server.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from boxoffice.settings import Settings

# An arbitrary constant: concurrent migrators (API and processors starting together) queue.
_MIGRATION_LOCK = 0x0B0C0FF1CE


def conninfo(settings: Settings) -> str:
    return f"{settings.pg_dsn} options='-c search_path={settings.pg_schema}'"


def async_pool(settings: Settings, name: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        conninfo(settings),
        min_size=settings.pg_pool_min,
        max_size=settings.pg_pool_max,
        name=name,
        open=False,
        kwargs={"autocommit": True},
    )


def sync_pool(settings: Settings, name: str) -> ConnectionPool:
    return ConnectionPool(
        conninfo(settings),
        min_size=settings.pg_pool_min,
        max_size=settings.pg_pool_max,
        name=name,
        open=False,
        kwargs={"autocommit": True},
    )


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("snapshots") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text()) for f in files]


def migrate(settings: Settings) -> list[str]:
    """Apply the migrations not applied yet; return their names."""
    applied: list[str] = []
    with psycopg.connect(settings.pg_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.pg_schema))
        )
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.pg_schema)))
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, text in migrations():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied
